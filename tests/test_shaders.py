"""The kernels are composed once, in Python (companion.gpu.shaders), and served composed in the
plan JSON the page runs (PlanAssets.plan_json): the served code is what the native executor
compiles, every served variant compiles on the native device, and a compile error maps to the
real .wgsl file and line through the served line map, the only map the page uses."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from conftest import break_step_helper

from companion.gpu import shaders

OFFERED = ["shader-f16", "subgroups", "timestamp-query"]  # what the page's adapter offers (WebGPU names)
# variant: (allow list, features the plan then uses)
VARIANTS = {
    "f32": ("none", []),
    "subgroups": ("subgroups", ["subgroups"]),
    "f16": ("f16", ["shader-f16"]),
    "f16+subgroups": ("f16,subgroups", ["shader-f16", "subgroups"]),
}
LAYOUTS = {"rows": None, "splitk": {"vendor": "nvidia", "device": "NVIDIA H100 80GB HBM3"}}  # page-shaped adapter info
CASES = [(v, lay) for v in VARIANTS for lay in LAYOUTS]


@pytest.fixture(scope="module")
def served(model) -> dict[tuple[str, str], dict]:
    """The plan JSON the page receives, per feature variant and matmul layout."""
    from companion.engines.browser import PlanAssets

    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("COMPANION_GPU_LAYOUT", raising=False)
        mp.delenv("COMPANION_GPU_FEATURES", raising=False)
        for variant, (allow, feats) in VARIANTS.items():
            for layout, info in LAYOUTS.items():
                data = PlanAssets(model, 64, max_batch=8, allow=allow).plan_json(OFFERED, info)
                assert data["features"] == feats and data["model"]["layout"] == layout
                out[variant, layout] = json.loads(json.dumps(data))  # as the page reads it
    return out


def _source(module: dict) -> shaders.ShaderSource:
    return shaders.ShaderSource.from_json(module)


@pytest.mark.parametrize("variant,layout", CASES)
def test_served_modules_are_the_composed_kernels(served, variant, layout):
    """One module per (shader, includes, enable), named by shaders.module_key (the native
    executor's grouping), holding the composed code and a line map that points at the real
    line of every composed line."""
    data = served[variant, layout]
    modules = data["modules"]
    used = set()
    for p in data["pipelines"]:
        key = shaders.module_key(p["shader"], p["includes"], p["enable"])
        assert p["module"] == key and key in modules
        used.add(key)
        src = shaders.load(p["shader"], p["includes"], p["enable"])
        assert _source(modules[key]) == src
    assert used == set(modules)  # nothing served that no pipeline runs
    variants = {(p["shader"], json.dumps(p["includes"], sort_keys=True), tuple(p["enable"])) for p in data["pipelines"]}
    assert len(variants) == len(modules)
    for mod in modules.values():
        lines = mod["code"].splitlines()
        assert len(lines) == len(mod["line_map"]) and mod["line_map"][0][0] == mod["name"]
        for i, (file, line) in enumerate(mod["line_map"]):
            real = shaders.read_text(file).splitlines()[line - 1]
            assert lines[i] == real or (i == 0 and lines[i].endswith(" " + real) and lines[i].startswith("enable ")), (mod["name"], i)
        assert not re.search(r"^//!", mod["code"], re.M)  # no directive left for the page
    short = {"shader-f16": "f16", "subgroups": "subgroups"}
    assert {e for p in data["pipelines"] for e in p["enable"]} == {short[f] for f in data["features"]}


def test_module_key():
    assert shaders.module_key("matmul.wgsl") == "matmul.wgsl"
    assert shaders.module_key("matmul.wgsl", {}, []) == "matmul.wgsl"
    a = shaders.module_key("attention.wgsl", {"_reduce.wgsl": "_reduce_sg.wgsl", "_prec.wgsl": "_prec_f16.wgsl"}, ["f16", "subgroups"])
    assert a == "attention.wgsl[_prec.wgsl=_prec_f16.wgsl,_reduce.wgsl=_reduce_sg.wgsl][enable f16,subgroups]"
    assert a != shaders.module_key("attention.wgsl", {"_reduce.wgsl": "_reduce_sg.wgsl"}, ["f16", "subgroups"])
    assert a != shaders.module_key("attention.wgsl", {"_reduce.wgsl": "_reduce_sg.wgsl", "_prec.wgsl": "_prec_f16.wgsl"}, ["f16"])


def test_for_naga_drops_only_the_implicit_directives():
    src = shaders.ShaderSource("k.wgsl", "enable f16; enable subgroups; // enable subgroups; kept\nfn main() {}\n", (("k.wgsl", 1), ("k.wgsl", 2)))
    out = shaders.for_naga(src)
    assert out.code == "enable f16; // enable subgroups; kept\nfn main() {}\n" and out.line_map == src.line_map
    assert shaders.for_naga(shaders.ShaderSource("k.wgsl", "enable subgroups; fn main() {}\n", (("k.wgsl", 1),))).code == "fn main() {}\n"


# ----------------------------------------------------------------------------- on the native device


@pytest.mark.gpu
@pytest.mark.parametrize("variant,layout", CASES)
def test_served_modules_compile_natively(served, gpu_device, gpu_features, variant, layout):
    data = served[variant, layout]
    lacking = [f for f in data["features"] if f not in gpu_features]
    if lacking:
        pytest.skip(f"the adapter lacks {lacking}")
    for key, mod in data["modules"].items():
        assert "error" not in mod, key
        assert shaders.compile_module(gpu_device, _source(mod)) is not None, key


def _raw_line(gpu_device, code: str) -> int:
    """The composed line naga reports for broken `code`."""
    with pytest.raises(Exception) as info:  # noqa: PT011 - wgpu's validation error type varies
        gpu_device.create_shader_module(code=code)
    return int(re.search(r"wgsl:(\d+):\d+", str(info.value)).group(1))


@pytest.mark.gpu
@pytest.mark.parametrize("enable", [[], ["f16", "subgroups"]])
def test_error_maps_through_the_served_line_map(gpu_device, gpu_features, shader_dir, enable):
    """A broken line in an included (and swapped) helper is reported at the helper's own line,
    from the served JSON alone."""
    if "f16" in enable and "shader-f16" not in gpu_features:
        pytest.skip("the adapter lacks shader-f16")
    shader_dir({
        "k.wgsl": "// a kernel\n//!include _ok.wgsl\n//!include _lib.wgsl\nfn main() {}\n",
        "_ok.wgsl": "fn ok() {}\nfn fine() {}\n",
        "_lib.wgsl": "fn helper() {}\n",
        "_lib_v.wgsl": "fn helper() {}\n\nfn bad() -> u32 { return 1.5; }\n",
    })
    key, src = shaders.pipeline_module(type("P", (), {"shader": "k.wgsl", "includes": {"_lib.wgsl": "_lib_v.wgsl"}, "enable": enable})())
    served = json.loads(json.dumps(src.to_json()))
    assert served["line_map"][5] == ["_lib_v.wgsl", 3]
    assert _raw_line(gpu_device, shaders.for_naga(src).code) == 6  # the composed line
    with pytest.raises(shaders.ShaderError, match=r"^_lib_v\.wgsl:3:") as info:
        shaders.compile_module(gpu_device, _source(served))
    assert "k.wgsl:6" not in str(info.value)


@pytest.mark.gpu
def test_broken_helper_in_a_served_plan(model, gpu_device, shader_dir):
    """The real kernels with a broken line appended to a shared helper: the plan JSON still
    serves every module, and each fails natively at the helper's line (what the page reports
    through the same line map; see test_browser_engine)."""
    from companion.engines.browser import PlanAssets

    line = break_step_helper(shader_dir(copy_real=True))
    data = json.loads(json.dumps(PlanAssets(model, 64, max_batch=8, allow="none").plan_json()))
    for key, mod in data["modules"].items():
        assert ["_step.wgsl", line] in mod["line_map"], key
        with pytest.raises(shaders.ShaderError, match=rf"^_step\.wgsl:{line}:") as info:
            shaders.compile_module(gpu_device, _source(mod))
        assert "undeclared_name" in str(info.value)


def test_a_kernel_that_does_not_compose_is_served_as_an_error(model, shader_dir):
    """The page fails its load with the composition error (as the native executor raises it)."""
    from companion.engines.browser import PlanAssets

    broken = shader_dir(copy_real=True)
    (broken / "_step.wgsl").write_text("//!include _quant.wgsl\n" + (broken / "_step.wgsl").read_text())
    data = PlanAssets(model, 64, max_batch=8, allow="none").plan_json()
    for p in data["pipelines"]:
        assert data["modules"][p["module"]] == {"name": p["shader"], "error": "_step.wgsl:1: included files may not use directives"}
