"""Old import path of the catalogue API, now in ``midnite.jobs`` (the same objects).

work = plan(model, "MODEL", layers=select_layers(model, table), shapes, settings=...)
summary = run(work, "DIR", model=model)   # renders what is missing, writes DIR/index.html
"""

from midnite.engine import render_config
from midnite.jobs.estimate import PROBE_REPEATS, PROBE_STEPS, Estimate, estimate, format_seconds
from midnite.jobs.examples import ExamplesSummary, add_examples
from midnite.jobs.executors import Executor, InProcess
from midnite.jobs.layers import default_layers, select_layers
from midnite.jobs.pages import build_index
from midnite.jobs.plan import Batch, CatalogueError, Settings, batch_seed, layer_folder, plan
from midnite.jobs.runner import Summary, run, todo
from midnite.jobs.views import CATALOGUE_VIEWS, DIVERSITY_IMAGES, DIVERSITY_WEIGHT

VIEWS = CATALOGUE_VIEWS

__all__ = [
    "DIVERSITY_IMAGES",
    "DIVERSITY_WEIGHT",
    "PROBE_REPEATS",
    "PROBE_STEPS",
    "VIEWS",
    "Batch",
    "CatalogueError",
    "Estimate",
    "ExamplesSummary",
    "Executor",
    "InProcess",
    "Settings",
    "Summary",
    "add_examples",
    "batch_seed",
    "build_index",
    "default_layers",
    "estimate",
    "format_seconds",
    "layer_folder",
    "plan",
    "render_config",
    "run",
    "select_layers",
    "todo",
]
