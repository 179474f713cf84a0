"""The native avatar renderer: draws a Pose with shaders/avatar.wgsl (the same WGSL the page runs)
on a wgpu-py device into an offscreen texture and reads the pixels back, for snapshots, the
gallery and the frames streamed to a page without WebGPU (companion.avatar.stream)."""

from __future__ import annotations

import io
import re
import struct
import threading
from typing import Any

import numpy as np

from companion.avatar.pose import POSE_BYTES, Pose
from companion.errors import EngineUnavailable

SHADER = "avatar.wgsl"
VIEW_BYTES = 16  # View: size (2 f32), px, flags
FORMAT = "rgba8unorm"  # not sRGB: the shader's colours are the pixel values, as on the page
MAX_SIZE = 4096
PARTS_PER_LAYER = 8  # instance index = 8 * layer + quad (the shader's vs decodes it)
# premultiplied "over": every layer is drawn on top of the ones before it
BLEND = {
    "color": {"src_factor": "one", "dst_factor": "one-minus-src-alpha", "operation": "add"},
    "alpha": {"src_factor": "one", "dst_factor": "one-minus-src-alpha", "operation": "add"},
}
_LAYER = re.compile(r"^// layer (fs_\w+) (\d+)\s*$", re.M)


def view_block(width: int, height: int) -> bytes:
    """The shader's View uniform (renderer-only values: target size, screen units per pixel)."""
    return struct.pack("<4f", width, height, 2.0 / min(width, height), 0.0)


def layers(source: str) -> list[tuple[str, int]]:
    """The draws the avatar shader asks for, in order: (fragment entry point, quads)."""
    found = [(m.group(1), int(m.group(2))) for m in _LAYER.finditer(source)]
    if not found:
        raise ValueError(f"{SHADER} declares no `// layer` lines")
    return found


class AvatarRenderer:
    """Renders Poses offscreen on one wgpu-py device. Not thread-safe: use it from one thread
    (companion.avatar.stream keeps it on its own)."""

    def __init__(self, device: Any = None, adapter: str | None = None) -> None:
        from companion.gpu.adapters import describe, request_adapter, request_device
        from companion.gpu.shaders import create_module, read_text

        if device is None:
            device = request_device(request_adapter(adapter))
        self.adapter = describe(dict(device.adapter.info))  # where it draws, for messages
        import wgpu

        self._wgpu = wgpu
        self.device = device
        module = create_module(device, SHADER)
        self.layers = layers(read_text(SHADER))
        group = device.create_bind_group_layout(
            entries=[
                {"binding": i, "visibility": wgpu.ShaderStage.VERTEX | wgpu.ShaderStage.FRAGMENT, "buffer": {"type": "uniform"}}
                for i in range(2)
            ]
        )
        layout = device.create_pipeline_layout(bind_group_layouts=[group])
        self.pipelines = [
            device.create_render_pipeline(
                label=f"avatar {entry}",
                layout=layout,
                vertex={"module": module, "entry_point": "vs"},
                fragment={"module": module, "entry_point": entry, "targets": [{"format": FORMAT, "blend": BLEND}]},
                primitive={"topology": "triangle-list"},
            )
            for entry, _ in self.layers
        ]
        usage = wgpu.BufferUsage.UNIFORM | wgpu.BufferUsage.COPY_DST
        self.pose_buf = device.create_buffer(size=POSE_BYTES, usage=usage)
        self.view_buf = device.create_buffer(size=VIEW_BYTES, usage=usage)
        self.bind_group = device.create_bind_group(
            layout=group,
            entries=[
                {"binding": 0, "resource": {"buffer": self.pose_buf}},
                {"binding": 1, "resource": {"buffer": self.view_buf}},
            ],
        )
        self._target: tuple[int, int, Any, Any, int] | None = None  # w, h, texture, readback, row bytes
        self._lock = threading.Lock()

    def _target_for(self, width: int, height: int) -> tuple[Any, Any, int]:
        if self._target is None or self._target[:2] != (width, height):
            wgpu = self._wgpu
            tex = self.device.create_texture(
                size=(width, height, 1),
                format=FORMAT,
                usage=wgpu.TextureUsage.RENDER_ATTACHMENT | wgpu.TextureUsage.COPY_SRC,
            )
            row = (width * 4 + 255) // 256 * 256  # copies need 256-byte rows
            buf = self.device.create_buffer(size=row * height, usage=wgpu.BufferUsage.COPY_DST | wgpu.BufferUsage.MAP_READ)
            self._target = (width, height, tex, buf, row)
        return self._target[2], self._target[3], self._target[4]

    def render(self, pose: Pose, width: int, height: int | None = None) -> np.ndarray:
        """The pose drawn at width x height: (H, W, 4) uint8 premultiplied RGBA, transparent
        where there is no avatar."""
        height = width if height is None else height
        if not (1 <= width <= MAX_SIZE and 1 <= height <= MAX_SIZE):
            raise ValueError(f"avatar size {width}x{height} is outside 1..{MAX_SIZE}")
        with self._lock:
            try:
                return self._render(pose, width, height)
            except EngineUnavailable:
                raise
            except Exception as exc:  # a lost device: say so in words the user can act on
                raise EngineUnavailable(f"the avatar could not be drawn on {self.adapter}: {exc}") from exc

    def _render(self, pose: Pose, width: int, height: int) -> np.ndarray:
        wgpu = self._wgpu
        tex, buf, row = self._target_for(width, height)
        q = self.device.queue
        q.write_buffer(self.pose_buf, 0, pose.pack())
        q.write_buffer(self.view_buf, 0, view_block(width, height))
        enc = self.device.create_command_encoder()
        rp = enc.begin_render_pass(
            color_attachments=[
                {"view": tex.create_view(), "clear_value": (0, 0, 0, 0), "load_op": "clear", "store_op": "store"}
            ]
        )
        rp.set_bind_group(0, self.bind_group)
        for i, (pipeline, (_, quads)) in enumerate(zip(self.pipelines, self.layers, strict=True)):
            rp.set_pipeline(pipeline)
            rp.draw(6, quads, 0, PARTS_PER_LAYER * i)
        rp.end()
        enc.copy_texture_to_buffer(
            {"texture": tex, "origin": (0, 0, 0)},
            {"buffer": buf, "offset": 0, "bytes_per_row": row, "rows_per_image": height},
            (width, height, 1),
        )
        q.submit([enc.finish()])
        buf.map_sync(wgpu.MapMode.READ)  # waits for the GPU (on_submitted_work_done_sync is broken)
        try:
            raw = np.frombuffer(buf.read_mapped(copy=False), dtype=np.uint8)  # (row * H,) u8
            img = raw.reshape(height, row)[:, : width * 4].reshape(height, width, 4).copy()  # (H, W, 4) u8
        finally:
            buf.unmap()
        return img

    def close(self) -> None:
        """Let the GPU objects go (the device is released with the last reference)."""
        self._target = None


def unpremultiply(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) premultiplied uint8 -> straight alpha uint8 (what PNG and ImageData store).
    Only the partly transparent pixels change (the avatar's edges), so only they are touched."""
    out = rgba.copy()
    a = rgba[..., 3]  # (H, W) u8
    edge = np.nonzero((a > 0) & (a < 255))
    ae = a[edge].astype(np.uint32)[:, None]  # (E, 1)
    rgb = (rgba[edge][:, :3].astype(np.uint32) * 255 + ae // 2) // ae  # (E, 3)
    out[edge[0], edge[1], :3] = np.minimum(rgb, 255).astype(np.uint8)
    out[a == 0] = 0
    return out


def png_bytes(rgba: np.ndarray, premultiplied: bool = True) -> bytes:
    """A PNG of an (H, W, 4) uint8 image (PNG stores straight alpha)."""
    from PIL import Image

    img = unpremultiply(rgba) if premultiplied else rgba
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img), "RGBA").save(out, format="PNG", optimize=True)
    return out.getvalue()


def premultiply(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) straight-alpha uint8 -> premultiplied (how renders are compared with PNGs)."""
    a = rgba[..., 3:4].astype(np.uint32)  # (H, W, 1)
    rgb = (rgba[..., :3].astype(np.uint32) * a + 127) // 255  # (H, W, 3)
    return np.concatenate([rgb, a], axis=-1).astype(np.uint8)  # (H, W, 4)


def contact_sheet(
    cells: dict[tuple[str, str], np.ndarray],
    rows: list[str],
    cols: list[str],
    background: tuple[int, int, int] = (34, 36, 52),
) -> np.ndarray:
    """A labelled grid of premultiplied (S, S, 4) renders, one row per `rows` key and one column
    per `cols` key (cells[(row, col)]), over an opaque background: (H, W, 3) uint8."""
    from PIL import Image, ImageDraw, ImageFont

    size = next(iter(cells.values())).shape[0]
    label_w, label_h, gap = 110, 22, 6
    w = label_w + len(cols) * (size + gap)
    h = label_h + len(rows) * (size + gap)
    sheet = np.empty((h, w, 3), np.float32)  # (H, W, 3)
    sheet[:] = background
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            img = cells[(r, c)].astype(np.float32)  # (S, S, 4)
            y, x = label_h + i * (size + gap), label_w + j * (size + gap)
            under = sheet[y : y + size, x : x + size]
            sheet[y : y + size, x : x + size] = img[..., :3] + under * (1.0 - img[..., 3:4] / 255.0)
    out = Image.fromarray(np.clip(sheet + 0.5, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=15)
    for j, c in enumerate(cols):
        draw.text((label_w + j * (size + gap) + size // 2, label_h // 2), c, fill=(220, 222, 235), font=font, anchor="mm")
    for i, r in enumerate(rows):
        draw.text((8, label_h + i * (size + gap) + size // 2), r, fill=(220, 222, 235), font=font, anchor="lm")
    return np.asarray(out)


def read_png(data: bytes | Any) -> np.ndarray:
    """(H, W, 4) uint8 straight-alpha pixels of a PNG (bytes or a path)."""
    from PIL import Image

    src = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    with Image.open(src) as im:
        return np.asarray(im.convert("RGBA")).copy()
