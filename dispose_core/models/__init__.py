"""PoseNet, MimicMotion UNet, hybrid ControlNet (motion encoder, point adapter)."""
