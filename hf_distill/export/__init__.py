"""Exporting a student for deployment: ONNX float32 and int8 files beside the weights, verified (`onnx`)."""

from .._deprecated import package_getattr

__getattr__ = package_getattr(__name__)  # the names of the old module hf_distill/export.py, with a FutureWarning
