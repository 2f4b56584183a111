import sys
import threading

import pytest

from ingestion.search.client import BulkOutcome
from ingestion.search.rebuild import read_ahead, send_concurrently


def test_batches_arrive_in_order_fetched_by_another_thread():
    fetched_by = set()

    def batches():
        for n in range(5):
            fetched_by.add(threading.current_thread().name)
            yield [n]

    assert list(read_ahead(batches())) == [[0], [1], [2], [3], [4]]
    assert fetched_by and all(name.startswith("read-ahead") for name in fetched_by)


def test_an_error_while_fetching_surfaces_at_its_batch():
    def batches():
        yield [1]
        raise RuntimeError("connection lost")

    reader = read_ahead(batches())
    assert next(reader) == [1]
    with pytest.raises(RuntimeError, match="connection lost"):
        next(reader)


def test_loads_shorten_the_switch_interval_only_while_they_run():
    default = sys.getswitchinterval()
    seen = []

    def send(chunk):
        seen.append(sys.getswitchinterval())
        return BulkOutcome(succeeded=len(chunk))

    outcome = send_concurrently(send, ([n] for n in range(6)), senders=2)
    assert outcome.succeeded == 6
    assert seen and max(seen) < default
    assert sys.getswitchinterval() == default
