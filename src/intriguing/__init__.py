"""intriguing: Szegedy et al. (2013), "Intriguing properties of neural networks", rerun.

Three layers, each importing only from the ones below (see the README):

- primitives, which know nothing of the book: :mod:`~intriguing.data`, :mod:`~intriguing.models`,
  :mod:`~intriguing.train`, :mod:`~intriguing.sparse_autoencoder`, :mod:`~intriguing.lbfgs_box`, :mod:`~intriguing.attacks`,
  :mod:`~intriguing.adversarial_training`, :mod:`~intriguing.evaluate`, :mod:`~intriguing.transfer`,
  :mod:`~intriguing.units`, :mod:`~intriguing.spectral`, :mod:`~intriguing.imagenet`,
  :mod:`~intriguing.peers`, :mod:`~intriguing.cache`, :mod:`~intriguing.hardware`,
  :mod:`~intriguing.timing`, :mod:`~intriguing.profiles`, :mod:`~intriguing.paper`,
  :mod:`~intriguing.plots`;
- :mod:`~intriguing.artifacts`: the cached, profile-keyed results that several chapters share;
- :mod:`intriguing.chapters`: one module per chapter notebook.

``python -m intriguing`` is the command line (:mod:`intriguing.cli`). Importing the package makes glibc keep
freed heap memory for the next tensors (:func:`~intriguing.hardware.keep_freed_heap`).

The names below are the library's entry points; every module's ``__all__`` lists the rest.
"""

from .artifacts import adversarial_set, attacked_images, min_over_targets, trained_network
from .attacks import AttackResult, SearchSettings, exact_linear_attack, min_distortion_attack, random_targets
from .data import load_mnist
from .evaluate import error_rate, predict
from .hardware import keep_freed_heap
from .models import NETWORKS, build_model
from .paper import compare_with_paper
from .profiles import PROFILES, Profile, get_profile

__all__ = ["NETWORKS", "PROFILES", "AttackResult", "Profile", "SearchSettings", "adversarial_set", "attacked_images",
           "build_model", "compare_with_paper", "error_rate", "exact_linear_attack", "get_profile", "load_mnist",
           "min_distortion_attack", "min_over_targets", "predict", "random_targets", "trained_network"]

__version__ = "0.1.0"

keep_freed_heap()  # glibc keeps freed heap memory: see intriguing.hardware
