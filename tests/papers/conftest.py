import pytest


@pytest.fixture
def fields_left_out_raise(monkeypatch):
    """Papers loaded during the test raise when a field their query left out is read,
    instead of reading it back with a query per paper: the code must load with
    ``.only(*matching.PAPER_FIELDS)`` what scoring and embedding read."""
    from django.db.models import FETCH_RAISE

    from papers.models import Paper

    manager = type(Paper.objects)
    get_queryset = manager.get_queryset
    monkeypatch.setattr(
        manager, "get_queryset", lambda self: get_queryset(self).fetch_mode(FETCH_RAISE)
    )
