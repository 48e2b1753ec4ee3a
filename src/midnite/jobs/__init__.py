"""Jobs (floor 5): views, plans, the one resumable runner, executors, estimates.

Contract: a job is a plan of pure :class:`Batch` items (``plan``: layer, view, units, settings,
seed) run by :func:`run`, the one resumable runner behind ``midnite render``, ``midnite
catalogue`` and Python callers: it decides what is done (one run key, one damaged-unit check),
renders through an executor (:class:`InProcess`, :class:`midnite.jobs.pool.PoolExecutor`, or
``midnite.jobs.ray.RayExecutor``), writes
each unit with one record builder, one finiteness check and one PNG encoder, and calls a page
builder. Views are registrations (:func:`register_view`), not branches. This package imports
from the floors below it (engine, images, analysis, store, pages), never from ``midnite.cli``;
it never imports Ray unless ``midnite.jobs.ray`` is imported.
"""

from midnite.jobs.estimate import PROBE_REPEATS, PROBE_STEPS, Estimate, estimate, format_seconds
from midnite.jobs.examples import ExamplesSummary, add_examples
from midnite.jobs.executors import Executor, InProcess
from midnite.jobs.layers import default_layers, select_layers
from midnite.jobs.memory import available_memory, check_memory
from midnite.jobs.pages import catalogue_pages, folder_gallery
from midnite.jobs.plan import (
    FLAT,
    LAYERS,
    Batch,
    CatalogueError,
    Layout,
    Settings,
    batch_seed,
    canonical,
    layer_folder,
    plan,
)
from midnite.jobs.pool import PoolExecutor, pool_workers
from midnite.jobs.runner import Interrupted, Summary, run, todo
from midnite.jobs.views import (
    CATALOGUE_VIEWS,
    DIVERSITY_IMAGES,
    DIVERSITY_WEIGHT,
    View,
    get_view,
    register_view,
    view_names,
)

__all__ = [
    "CATALOGUE_VIEWS",
    "DIVERSITY_IMAGES",
    "DIVERSITY_WEIGHT",
    "FLAT",
    "LAYERS",
    "PROBE_REPEATS",
    "PROBE_STEPS",
    "Batch",
    "CatalogueError",
    "Estimate",
    "ExamplesSummary",
    "Executor",
    "InProcess",
    "Interrupted",
    "Layout",
    "PoolExecutor",
    "Settings",
    "Summary",
    "View",
    "add_examples",
    "available_memory",
    "batch_seed",
    "canonical",
    "catalogue_pages",
    "check_memory",
    "default_layers",
    "estimate",
    "folder_gallery",
    "format_seconds",
    "get_view",
    "layer_folder",
    "plan",
    "pool_workers",
    "register_view",
    "run",
    "select_layers",
    "todo",
    "view_names",
]
