"""Host-independent DisPose + MimicMotion library (torch / numpy / onnxruntime; never imports comfy).

Sub-packages, in the order data flows:
pose -> motion -> dift -> models -> sampling; loading holds checkpoint readers and the model-file
layout; tiny writes random-weight model files in the real formats for tests and the smoke demo.
"""
