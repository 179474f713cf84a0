"""The avatar: the state the core derives from the conversation (emotion, activity, gaze,
visemes), the per-frame pose the renderers draw, and the WGSL renderer itself."""
