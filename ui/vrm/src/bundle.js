// The entry of the page's VRM bundle (ui/vrm/three-vrm.js, built by scripts/build_vrm.sh with
// esbuild from the pinned npm packages of package.json; not committed): only what
// ui/avatar/vrm.js uses of three.js and @pixiv/three-vrm. WebGPURenderer draws with WebGPU where
// the page has an adapter and with its WebGL2 backend where it has none.

export {
  WebGPURenderer, Scene, PerspectiveCamera, DirectionalLight, HemisphereLight, Box3, Vector2, Vector3, TextureLoader, REVISION,
} from "three/webgpu";
export { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";
export { VRMLoaderPlugin, VRMUtils, MToonMaterialLoaderPlugin } from "@pixiv/three-vrm";
export { MToonNodeMaterial } from "@pixiv/three-vrm/nodes";
