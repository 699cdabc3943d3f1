"""Rotation by schedule: due only once the active key has signed a period and the next
key has been published long enough for every JWKS cache; pruning after; once across
processes that tick together; shown by `keys list`; refused as a setting when the
period is shorter than publish-before-sign allows."""

from __future__ import annotations

import dataclasses
import json
import threading

import pytest
from click.testing import Result
from flask import Flask

from issuer import create_app
from issuer.config import Config
from issuer.keys import KeyRing, autorotation
from issuer.schedule import Scheduler
from tests.issuer.conftest import FakeClock

DAY = 24 * 3600


@pytest.fixture
def config(issuer_config: Config) -> Config:
    return dataclasses.replace(issuer_config, rotation_period=DAY)


def test_it_rotates_when_due_and_allowed_then_prunes(
    config: Config, ring: KeyRing, clock: FakeClock
) -> None:
    first = ring.manifest()
    autorotation.check(ring, config)
    assert ring.manifest().generation == first.generation, "not due yet"
    clock.advance(DAY - 1)
    autorotation.check(ring, config)
    assert ring.manifest().active.kid == first.active.kid
    clock.advance(1)
    autorotation.check(ring, config)
    second = ring.manifest()
    assert second.active.kid == first.next.kid, "the published next key now signs"
    assert first.active.kid in {key.kid for key in second.keys}, "retired, still published"
    # A day later: rotated again, and the first key, whose tokens have all expired, pruned.
    clock.advance(DAY)
    autorotation.check(ring, config)
    third = ring.manifest()
    assert third.active.kid == second.next.kid
    assert first.active.kid not in {key.kid for key in third.keys}


def test_it_waits_for_the_next_key_to_be_published_long_enough(
    issuer_config: Config, ring: KeyRing, clock: FakeClock
) -> None:
    """A rotation by hand a moment ago published a new next key: the schedule waits
    for ISSUER_ROTATION_MIN_PUBLISHED rather than force it."""
    config = dataclasses.replace(
        issuer_config, rotation_period=issuer_config.rotation_min_published
    )
    clock.advance(config.rotation_min_published)
    ring.rotate(min_published=config.rotation_min_published)
    manifest = ring.manifest()
    when = autorotation.next_rotation(manifest, config)
    assert when == manifest.next.rotation_safe_at(config.rotation_min_published)
    clock.advance(config.rotation_min_published - 1)
    autorotation.check(ring, config)
    assert ring.manifest().active.kid == manifest.active.kid


def test_processes_ticking_together_rotate_once(
    config: Config, ring: KeyRing, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four processes' timers at the same moment: the database lets one look at the
    ring (two looking at once could both find it due and rotate twice)."""
    looked: list[int] = []
    real_check = autorotation.check

    def counted(ring: KeyRing, config: Config) -> None:
        looked.append(1)
        real_check(ring, config)

    monkeypatch.setattr(autorotation, "check", counted)
    app = create_app(config)
    app.extensions["keyring"] = ring
    clock.advance(DAY)
    before = ring.manifest()
    schedulers = [Scheduler(app.extensions["db"], autorotation.jobs(app)) for _ in range(4)]
    start = threading.Barrier(len(schedulers))

    def tick(scheduler: Scheduler) -> None:
        start.wait()
        scheduler.run_due()

    threads = [threading.Thread(target=tick, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    after = ring.manifest()
    assert looked == [1]
    assert after.active.kid == before.next.kid
    assert after.generation == before.generation + 1, "one rotation, not four"


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=list(args))


def test_keys_list_shows_the_next_scheduled_rotation(
    config: Config, ring: KeyRing, issuer_config: Config
) -> None:
    app = create_app(config)
    app.extensions["keyring"] = ring
    listed = run(app, "keys", "list")
    assert "next scheduled rotation: " in listed.output
    document = json.loads(run(app, "keys", "list", "--json").output)
    assert document["next_scheduled_rotation"] == autorotation.next_rotation(
        ring.manifest(), config
    )
    unscheduled = create_app(issuer_config)
    unscheduled.extensions["keyring"] = ring
    assert "no scheduled rotation" in run(unscheduled, "keys", "list").output


def test_a_period_shorter_than_publish_before_sign_is_refused(issuer_config: Config) -> None:
    with pytest.raises(ValueError, match="ISSUER_ROTATION_PERIOD"):
        create_app(dataclasses.replace(issuer_config, rotation_period=600))
