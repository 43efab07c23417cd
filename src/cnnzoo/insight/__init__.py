"""Seeing what a model does: the evaluation report page, Grad-CAM maps, annotated images and
the plots (curves, confusion matrices, lr-find). Built on `infer/`; knows nothing of training."""
