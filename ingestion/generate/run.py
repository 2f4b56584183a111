"""The generation run: team, content, then customers block by block, then what depends on them all.

Customers are simulated in contact order, ``block_size`` at a time; each block's rows (customer,
journey, ToFu/MoFu/BoFu, money, tags, conversations, events) are written before the next block
starts, so memory does not grow with the customer count. Tables that summarise everything
(employees' totals, script usage, daily KPIs) are written last from counters kept on the way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np

from ingestion.contracts import CONTRACTS
from ingestion.generate import content, crm_settings, funnel, funnel_rows
from ingestion.generate.config import DEFAULT_DAYS, DEFAULT_END_DATE, GenerateConfig, money
from ingestion.generate.conversations import ConversationGenerator
from ingestion.generate.kpis import KpiCounters
from ingestion.generate.manifest import MANIFEST_NAME, Manifest
from ingestion.generate.message_pool import MessagePool
from ingestion.generate.people import Employee, build_staff
from ingestion.generate.writers import LANDING_NAME, TableSink

Progress = Callable[[str, int, int], None]  # (phase, done, total)


def generate(
    out_dir: str | Path,
    customers: int,
    seed: int,
    days: int = DEFAULT_DAYS,
    bad_rows: float = 0.0,
    progress: Progress | None = None,
    end_date: date = DEFAULT_END_DATE,
    overwrite: bool = False,
    **tuning,
) -> Manifest:
    """Write landing files for `customers` simulated customers into out_dir and return the manifest.

    tuning: GenerateConfig's block_size / row_group_rows / rows_per_part (tests use small values).
    """
    config = GenerateConfig(
        customers=customers, seed=seed, days=days, end_date=end_date, bad_rows=bad_rows, **tuning
    )
    out = Path(out_dir)
    _prepare(out, overwrite)
    report = progress or (lambda phase, done, total: None)
    return _Run(config, out, report).execute()


def _prepare(out: Path, overwrite: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    previous = [
        p
        for p in out.iterdir()
        if LANDING_NAME.match(p.name) or p.name == MANIFEST_NAME or p.name.endswith(".partial")
    ]
    if previous and not overwrite:
        raise FileExistsError(
            f"{out} already holds landing files ({previous[0].name}, ...); pass overwrite (--overwrite) to replace them"
        )
    for path in previous:
        path.unlink()


class _Run:
    def __init__(self, config: GenerateConfig, out: Path, report: Progress):
        self.config = config
        self.report = report
        self.staff = build_staff(config)
        self.tags = content.build_tags()
        self.scripts = content.build_scripts()
        domains = {
            "customer_tags": [t.name for t in self.tags],
            "training_progress": [c.code for c in content.COURSES],
        }
        self.sinks = {table: TableSink(out, table, config, domains.get(table)) for table in CONTRACTS}
        self.out = out
        self.kpis = KpiCounters(config, len(self.staff))
        self.conversations = ConversationGenerator(
            config,
            MessagePool(config, self.scripts),
            self.staff,
            self.scripts,
            self.sinks["conversations"],
            self.sinks["conversation_events"],
            self.kpis,
        )
        self.simulator = funnel.FunnelSimulator(config, self.staff)
        n = len(self.staff)
        self.owned = np.zeros(n, dtype=np.int64)
        self.owned_active = np.zeros(n, dtype=np.int64)
        self.owned_net_cents = np.zeros(n, dtype=np.int64)

    def execute(self) -> Manifest:
        config = self.config
        contact_times = self._contact_times()
        for block, start in enumerate(range(0, config.customers, config.block_size)):
            stop = min(config.customers, start + config.block_size)
            rng = config.python_rng("customers", block)
            lives = [self.simulator.simulate(i, int(contact_times[i]), rng) for i in range(start, stop)]
            self.conversations.run_block(lives, block)
            self._write_customers(lives, rng)
            self.report("customers", stop, config.customers)
        self.report("summaries", 0, 1)
        self._write_summaries()
        manifest = Manifest(
            seed=config.seed,
            customers=config.customers,
            days=config.days,
            end_date=config.end_date.isoformat(),
            bad_rows_fraction=config.bad_rows,
        )
        for sink in self.sinks.values():
            manifest.files += sink.close()
        manifest.files.sort(key=lambda f: f.file)
        manifest.write(self.out)
        self.report("summaries", 1, 1)
        return manifest

    def _contact_times(self) -> np.ndarray:
        """First contacts spread over the window, leaving the last hours for the first reply."""
        config = self.config
        rng = config.numpy_rng("contact-times")
        times = rng.integers(config.start_ts, config.end_ts - 6 * 3600, config.customers)
        return np.sort(times)

    def _write_customers(self, lives: list[funnel.Life], rng) -> None:
        s = self.sinks
        s["customers"].write([funnel_rows.customer_row(life, rng) for life in lives])
        s["customer_journey"].write([row for life in lives for row in funnel_rows.journey_rows(life, rng)])
        s["funnel_tofu"].write([funnel_rows.tofu_row(life, rng) for life in lives])
        s["funnel_mofu"].write([funnel_rows.mofu_row(life) for life in lives if life.advisor])
        s["funnel_bofu"].write([funnel_rows.bofu_row(life) for life in lives if life.confirmed_deposits()])
        s["deposits"].write([row for life in lives for row in funnel_rows.deposit_rows(life)])
        s["withdrawals"].write([row for life in lives for row in funnel_rows.withdrawal_rows(life)])
        s["customer_tags"].write([row for life in lives for row in funnel_rows.tag_rows(life, self.config)])
        for life in lives:
            self.kpis.record_life(life)
            owner = life.owner.index
            self.owned[owner] += 1
            self.owned_active[owner] += life.status == "active"
            if life.confirmed_deposits():
                self.owned_net_cents[owner] += life.net_deposit_cents()

    def _write_summaries(self) -> None:
        config, s, staff = self.config, self.sinks, self.staff
        rng = config.python_rng("reference-content")
        s["employees"].write(
            [
                e.row(
                    int(self.owned[e.index]),
                    int(self.owned_active[e.index]),
                    money(int(self.owned_net_cents[e.index])),
                    config.seed,
                )
                for e in staff
            ]
        )
        authors = [e for e in staff if e.department == "培训"] or staff
        s["tags"].write(content.tag_rows(self.tags, config))
        s["scripts"].write(
            content.script_rows(
                self.scripts,
                self.conversations.script_usage.tolist(),
                self.conversations.script_successes.tolist(),
                authors,
                config,
                rng,
            )
        )
        s["materials"].write(content.material_rows(config, authors, rng))
        s["training_courses"].write(content.course_rows(config))
        s["training_progress"].write(content.training_progress_rows(staff, config, rng))
        s["system_settings"].write(crm_settings.settings_rows(_admin(staff)))
        for batch in self.kpis.row_batches([e.code for e in staff]):
            s["employee_kpis"].write(batch)


def _admin(staff: list[Employee]) -> Employee | None:
    return next((e for e in staff if e.role == "admin"), None)
