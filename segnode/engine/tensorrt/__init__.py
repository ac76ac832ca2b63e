"""The TensorRT backend: build and load, and the FX lowering it is checked against."""
