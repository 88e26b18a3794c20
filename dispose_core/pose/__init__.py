"""DWPose on onnxruntime, keypoint selection/alignment, skeleton rendering, POSE_KEYPOINT interop."""
