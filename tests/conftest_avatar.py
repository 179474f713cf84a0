"""Avatar fixtures (imported by tests/conftest.py): the native avatar renderer on the test adapter,
and --regen-avatar-goldens, the only way the golden images in tests/golden/avatar/ change."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-avatar-goldens",
        action="store_true",
        default=False,
        help="Rewrite tests/golden/avatar/*.png from the native renderer (make them on lavapipe) instead of comparing.",
    )


@pytest.fixture(scope="session")
def avatar_renderer(gpu_device):
    """The native avatar renderer on the shared test device (lavapipe in CI)."""
    from companion.avatar.render import AvatarRenderer

    return AvatarRenderer(device=gpu_device)
