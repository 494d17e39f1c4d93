"""Talking to the Hugging Face Hub: which files may be uploaded (`selection`), secrets and local paths kept out
(`scrub`), timeouts, retries and error explanations (`http`), and model and dataset commits (`commits`).

What is published (the card, the Space, `publish`) lives in `hf_distill.publishing`, above this package."""

from .._deprecated import package_getattr

__getattr__ = package_getattr(__name__)  # the names of the old module hf_distill/hub.py, with a FutureWarning
