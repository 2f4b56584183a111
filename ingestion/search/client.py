"""One small adapter so the indexer runs unchanged on Elasticsearch 8/9 and OpenSearch 2/3.

The two Python clients refuse each other's server, and differ in details we absorb here: response
objects (ES ``ObjectApiResponse`` vs plain dict), where an error's HTTP status lives, how to ignore a
404. Everything else uses only the APIs both share (``index=``/``body=`` keywords).

Bulk requests arrive here as NDJSON bytes (``bulk_lines``) rather than going through
``helpers.streaming_bulk``: the full rebuild sends them from several threads while the next chunk
is read from PostgreSQL, and both 429 flavours (the whole request, or single items) need back-off
without losing any document. Requests are also kept within a byte budget (``bulk_lines``): a
document larger than the budget, or one the engine refuses as too large (413) in a request of its
own, comes back as that document's failure, status 413, instead of failing every document with it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ingestion.search import bulk_lines
from ingestion.search.bulk_lines import BulkItem

log = logging.getLogger(__name__)

# Bulk item outcomes that mean "the index already reflects this or something newer": a replayed or
# stale write rejected by external versioning (409), a delete of a document that is not there (404).
_HARMLESS = {("index", 409), ("delete", 409), ("delete", 404)}
_RETRYABLE_STATUS = {429, 502, 503, 504}
# What the engines answer a request body larger than their ``http.max_content_length``; also the
# status a document too large to send is reported with (``quarantine`` takes it as permanent).
TOO_LARGE = 413
_ITEM_OUTCOMES = "errors,items.*.error,items.*._id,items.*.status"


class SearchSettingsLike(Protocol):
    url: str
    flavour: str
    username: str | None
    password: str | None
    verify_tls: bool
    ca_certs: str | None


@dataclass
class BulkOutcome:
    succeeded: int = 0
    harmless: int = 0  # replays and stale writes the engine rejected by version: nothing lost
    failed: list[dict] = field(default_factory=list)  # per-document errors, reported, never dropped
    # Ids of deletes (counted in ``harmless``) the engine refused because the document it holds has a
    # newer version: the caller decides whether that newer version may outlive the delete.
    outranked_deletes: list[str] = field(default_factory=list)

    def merge(self, other: BulkOutcome) -> None:
        self.succeeded += other.succeeded
        self.harmless += other.harmless
        self.failed.extend(other.failed)
        self.outranked_deletes.extend(other.outranked_deletes)


def _failure_kind(failure: dict) -> str:
    error = failure.get("error")
    kind = (error.get("type") if isinstance(error, dict) else None) or "error"
    status = failure.get("status")
    return f"{kind} (HTTP {status})" if status else kind


class BulkFailed(RuntimeError):
    def __init__(self, outcome: BulkOutcome):
        # The error types first: what the operator must fix (a closed index, an alias without a write
        # index...) must survive a message cut to its start.
        kinds = ", ".join(sorted({_failure_kind(failure) for failure in outcome.failed}))
        sample = outcome.failed[:5]
        super().__init__(f"{len(outcome.failed)} document(s) failed to index: {kinds}; e.g. {sample}")
        self.outcome = outcome


def _too_large(item: BulkItem, why: str) -> dict:
    """A document's failure for its size: which document and how big, nothing of its content."""
    return {
        "id": item.doc_id,
        "op": item.op,
        "status": TOO_LARGE,
        "error": {
            "type": "document_too_large",
            "reason": f"the bulk request lines of #{item.doc_id} are {why}",
        },
    }


def _body(response: Any) -> Any:
    return getattr(response, "body", response)


def error_status(exc: BaseException) -> int | None:
    """The HTTP status of a client error, for either client (``meta.status`` vs ``status_code``)."""
    meta = getattr(exc, "meta", None)
    if meta is not None and isinstance(getattr(meta, "status", None), int):
        return meta.status
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _elasticsearch_client(settings: SearchSettingsLike, timeout: float):
    import elasticsearch
    from elastic_transport import Transport

    class CompatTransport(Transport):
        """Ask for the server's REST compatibility level, not the client's.

        A 9.x Python client sends ``compatible-with=9``, which an 8.x server answers with
        media_type_header_exception; declaring the server's own major makes the same client
        work with both (the APIs used here did not change between 8 and 9).
        """

        server_major: int | None = None

        def perform_request(self, method, target, *, headers=None, **kwargs):
            client_major = elasticsearch.__versionstr__.split(".")[0]
            if headers and self.server_major and str(self.server_major) != client_major:
                headers = headers.copy()
                for name in ("accept", "content-type"):
                    value = headers.get(name)
                    if value and f"compatible-with={client_major}" in value:
                        headers[name] = value.replace(
                            f"compatible-with={client_major}", f"compatible-with={self.server_major}"
                        )
            return super().perform_request(method, target, headers=headers, **kwargs)

    kwargs: dict[str, Any] = {"request_timeout": timeout, "transport_class": CompatTransport}
    if settings.username:
        kwargs["basic_auth"] = (settings.username, settings.password or "")
    if settings.url.startswith("https"):
        kwargs["verify_certs"] = settings.verify_tls
        if settings.ca_certs:
            kwargs["ca_certs"] = settings.ca_certs
    client = elasticsearch.Elasticsearch(settings.url, **kwargs)
    # The raw transport skips the compatibility headers, so this works whatever the server major.
    # (`GET /` is not used: Elasticsearch's integ-test-zip has no rest-root module to answer it.)
    _, nodes = client.transport.perform_request(
        "GET", "/_nodes/_local?filter_path=nodes.*.version", headers={"accept": "application/json"}
    )
    version = next(iter(nodes["nodes"].values()))["version"]
    client.transport.server_major = int(version.split(".")[0])
    return client, version


def _opensearch_client(settings: SearchSettingsLike, timeout: float):
    import opensearchpy

    kwargs: dict[str, Any] = {"timeout": timeout}
    if settings.username:
        kwargs["http_auth"] = (settings.username, settings.password or "")
    if settings.url.startswith("https"):
        kwargs["use_ssl"] = True
        kwargs["verify_certs"] = settings.verify_tls
        if settings.ca_certs:
            kwargs["ca_certs"] = settings.ca_certs
    client = opensearchpy.OpenSearch([settings.url], **kwargs)
    return client, client.info()["version"]["number"]


class SearchClient:
    """The operations the indexer needs, identical on both engines."""

    def __init__(self, raw: Any, flavour: str, version: str):
        self.raw = raw
        self.flavour = flavour
        self.version = version

    @classmethod
    def connect(cls, settings: SearchSettingsLike, timeout: float = 60.0) -> SearchClient:
        if settings.flavour == "elasticsearch":
            raw, version = _elasticsearch_client(settings, timeout)
        elif settings.flavour == "opensearch":
            raw, version = _opensearch_client(settings, timeout)
        else:
            raise ValueError(f"unknown search flavour {settings.flavour!r}")
        return cls(raw, settings.flavour, version)

    def close(self) -> None:
        self.raw.close()

    # -- indices and aliases -------------------------------------------------------------------

    def _ignoring_404(self, call, *args, **kwargs):
        try:
            return _body(call(*args, **kwargs))
        except Exception as exc:
            if error_status(exc) == 404:
                return None
            raise

    def create_index(self, name: str, body: dict) -> None:
        self.raw.indices.create(index=name, body=body)

    def delete_index(self, name: str) -> None:
        """Delete one index by its exact name (never a wildcard: Elasticsearch 8+ refuses that)."""
        if "*" in name or "," in name:
            raise ValueError(f"refusing to delete by pattern: {name!r}")
        self._ignoring_404(self.raw.indices.delete, index=name)

    def index_exists(self, name: str) -> bool:
        return bool(self.raw.indices.exists(index=name))

    def indices_matching(self, pattern: str) -> list[str]:
        found = self._ignoring_404(self.raw.indices.get_alias, index=pattern)
        return sorted(found or {})

    def alias_targets(self, alias: str) -> list[str]:
        found = self._ignoring_404(self.raw.indices.get_alias, name=alias)
        return sorted(found or {})

    def update_aliases(self, actions: list[dict]) -> None:
        """All actions in one ``_aliases`` call: readers see the old or the new index, never neither."""
        self.raw.indices.update_aliases(body={"actions": actions})

    def put_settings(self, index: str, settings: dict) -> None:
        self.raw.indices.put_settings(index=index, body={"index": settings})

    def mapping_meta(self, index: str) -> dict:
        mappings = _body(self.raw.indices.get_mapping(index=index))
        return next(iter(mappings.values()))["mappings"].get("_meta", {})

    def refresh(self, index: str) -> None:
        self.raw.indices.refresh(index=index)

    def analyzer_available(self, analyzer: str) -> bool:
        """Whether the engine has a built-in analyzer (``cjk`` lives in analysis-common, absent from
        Elasticsearch's integ-test-zip)."""
        try:
            self.raw.indices.analyze(body={"analyzer": analyzer, "text": "测试"})
        except Exception as exc:
            if error_status(exc) == 400:
                return False
            raise
        return True

    # -- reading ----------------------------------------------------------------------------------

    def count(self, index: str, query: dict | None = None) -> int:
        body = {"query": query} if query else None
        return int(_body(self.raw.count(index=index, body=body))["count"])

    def search(self, index: str, body: dict, filter_path: str | None = None) -> dict:
        """The engine's answer, only its parts ``filter_path`` names if given (then a part with
        nothing in it is left out: no hits, no ``hits``)."""
        if filter_path is None:
            return _body(self.raw.search(index=index, body=body))
        return _body(self.raw.search(index=index, body=body, filter_path=filter_path))

    def get_source(self, index: str, doc_id: str) -> dict | None:
        found = self._ignoring_404(self.raw.get, index=index, id=doc_id)
        return found["_source"] if found and found.get("found") else None

    def document_ids(self, index: str, page_size: int) -> Iterator[list[int]]:
        """Every document's conversation id, ascending, ``page_size`` at a time (at most the index's
        ``max_result_window``, 10,000 unless set otherwise). ``search_after`` on the ``id`` field: no
        scroll context to expire, and deleting documents already passed does not disturb it. Only what
        the last refresh made visible. The id is the sort value, read from doc values: no stored field
        of a hit is loaded (not even ``_id``), and only the sort values are sent back."""
        after: list = []
        while True:
            body: dict = {
                "size": page_size,
                "stored_fields": "_none_",
                "sort": [{"id": "asc"}],
                "track_total_hits": False,
            }
            if after:
                body["search_after"] = after
            hits = self.search(index, body, filter_path="hits.hits.sort").get("hits", {}).get("hits")
            if not hits:
                return
            yield [int(hit["sort"][0]) for hit in hits]
            after = hits[-1]["sort"]

    def versions(self, index: str, doc_ids: Sequence[str]) -> dict[str, int]:
        """The version the index holds of each of these documents (those it has)."""
        if not doc_ids:
            return {}
        found = _body(
            self.raw.mget(
                index=index,
                body={"docs": [{"_id": doc_id, "_source": False} for doc_id in doc_ids]},
                filter_path="docs._id,docs._version,docs.found",
            )
        )
        return {doc["_id"]: int(doc["_version"]) for doc in found.get("docs", []) if doc.get("found")}

    # -- writing ----------------------------------------------------------------------------------

    def bulk(
        self,
        items: Sequence[BulkItem],
        *,
        max_bytes: int | None = None,
        max_retries: int = 8,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        refresh: bool = False,
    ) -> BulkOutcome:
        """Send ``items`` in requests of at most ``max_bytes`` (default ``bulk_lines.max_request_bytes()``);
        back off and resend what the engine rejected as overloaded (429).

        Returns per-document failures instead of raising, so the caller decides whether a
        cursor may advance (it may not while any document failed). A document larger than
        ``max_bytes`` is not sent: it fails with status 413, like one the engine itself refuses as
        too large (a request it refuses so is sent again in halves, down to that one document)."""
        max_bytes = max_bytes or bulk_lines.max_request_bytes()
        outcome = BulkOutcome()
        for request in bulk_lines.by_size(items, max_bytes):
            if len(request) == 1 and len(request[0].lines) > max_bytes:
                outcome.failed.append(
                    _too_large(
                        request[0],
                        f"{len(request[0].lines)} bytes, more than the bulk request budget of {max_bytes} "
                        f"bytes ({bulk_lines.MAX_REQUEST_BYTES_VARIABLE})",
                    )
                )
                continue
            outcome.merge(
                self._bulk_halving_when_too_large(
                    request,
                    max_retries=max_retries,
                    initial_backoff_s=initial_backoff_s,
                    max_backoff_s=max_backoff_s,
                    refresh=refresh,
                )
            )
        return outcome

    def _bulk_halving_when_too_large(self, items: list[BulkItem], **options: Any) -> BulkOutcome:
        """One request; if the engine refuses its body as too large (its ``http.max_content_length``
        is below our budget), each half again, down to single documents, which fail with 413."""
        try:
            return self._bulk_request(items, **options)
        except Exception as exc:
            if error_status(exc) != TOO_LARGE:
                raise
        size = sum(len(item.lines) for item in items)
        if len(items) == 1:
            return BulkOutcome(
                failed=[
                    _too_large(
                        items[0],
                        f"{size} bytes, refused by the engine as too large in a request of its own "
                        "(HTTP 413: more than its http.max_content_length)",
                    )
                ]
            )
        log.warning(
            "the search engine refused a bulk request of %d bytes as too large (HTTP 413): sending it in "
            "halves; set %s below the engine's http.max_content_length",
            size,
            bulk_lines.MAX_REQUEST_BYTES_VARIABLE,
        )
        middle = len(items) // 2
        outcome = self._bulk_halving_when_too_large(items[:middle], **options)
        outcome.merge(self._bulk_halving_when_too_large(items[middle:], **options))
        return outcome

    def _bulk_request(
        self,
        items: Sequence[BulkItem],
        *,
        max_retries: int,
        initial_backoff_s: float,
        max_backoff_s: float,
        refresh: bool,
    ) -> BulkOutcome:
        """Send one request's items; back off and resend what the engine rejected as overloaded (429).

        Nearly every request succeeds whole, so the engine is first asked only whether any item
        failed (a few bytes back instead of an answer per document, which both sides would spend
        CPU on in a full rebuild). When one did, the same items are sent again asking for each one's
        outcome: harmless, since every item carries its version and a replay changes nothing."""
        pending = list(items)
        outcome = BulkOutcome()
        detailed = False
        attempt = 0
        while True:
            payload = b"".join(item.lines for item in pending)
            try:
                response = _body(
                    self.raw.bulk(
                        body=payload,
                        filter_path=_ITEM_OUTCOMES if detailed else "errors",
                        **({"refresh": "wait_for"} if refresh else {}),
                    )
                )
            except Exception as exc:
                if error_status(exc) in _RETRYABLE_STATUS and attempt < max_retries:
                    self._sleep(attempt, initial_backoff_s, max_backoff_s, f"bulk request: {exc}")
                    attempt += 1
                    continue
                raise
            if not response.get("errors"):
                outcome.succeeded += len(pending)
                return outcome
            if not detailed:
                detailed = True
                continue
            retry: list[BulkItem] = []
            for sent, answer in zip(pending, response["items"], strict=True):
                result = next(iter(answer.values()))
                status = int(result.get("status", 500))
                if 200 <= status < 300:
                    outcome.succeeded += 1
                elif (sent.op, status) in _HARMLESS:
                    outcome.harmless += 1
                    if (sent.op, status) == ("delete", 409):
                        outcome.outranked_deletes.append(sent.doc_id)
                elif status == 429 and attempt < max_retries:
                    retry.append(sent)
                else:
                    outcome.failed.append(
                        {"id": sent.doc_id, "op": sent.op, "status": status, "error": result.get("error")}
                    )
            if not retry:
                return outcome
            pending = retry
            self._sleep(attempt, initial_backoff_s, max_backoff_s, f"{len(retry)} item(s) rejected with 429")
            attempt += 1

    @staticmethod
    def _sleep(attempt: int, initial: float, maximum: float, why: str) -> None:
        delay = min(maximum, initial * 2**attempt) * (0.5 + random.random() / 2)
        log.warning("search engine overloaded (%s); retrying in %.1fs", why, delay)
        time.sleep(delay)
