"""The facade glue for ``midnite.concepts`` / ``midnite.Concepts`` (the text the lead pastes
into ``src/midnite/__init__.py``), kept here so that tests import and check it."""

from midnite.analysis import concepts as _concepts_analysis
from midnite.store import concepts as _concepts_store


class Concepts(_concepts_analysis.Concepts):
    """A layer's concept dictionary (``midnite.analysis.concepts.Concepts``) that saves itself."""

    def save(self, path):
        """Write the dictionary to ``path`` atomically (weights digest, layer, method, settings)."""
        return _concepts_store.save_concepts(path, self)

    @classmethod
    def load(cls, path, model, layer=None):
        """The dictionary saved at ``path`` on ``model``; another model's or layer's is refused."""
        return cls._of(_concepts_store.load_concepts(path, model, layer))

    @classmethod
    def from_directions(cls, model, layer, directions, **options):
        """Concepts from an ``(n, C)`` dictionary learned elsewhere (e.g. an Overcomplete SAE)."""
        return cls._of(_concepts_analysis.from_directions(model, layer, directions, **options))

    @classmethod
    def _of(cls, base):
        return cls(**{f: getattr(base, f) for f in base.__dataclass_fields__})


def concepts(model, layer, images, n, method=None, **options):
    """Learn ``n`` concepts of ``layer`` from ``images`` (see ``midnite.analysis.concepts.fit``)."""
    return Concepts._of(_concepts_analysis.fit(model, layer, images, n, method, **options))
