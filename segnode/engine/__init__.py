"""Inference engines: backends behind one interface (torch_tensorrt imported lazily)."""
