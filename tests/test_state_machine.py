"""Model-based test: hypothesis runs random sequences of registry actions against the embedded
service (a fresh SQLite registry each time) and against a plain model of what the registry
should hold, and compares the two after every step."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

import covex
from covex.domain.entities import FileEntry, NewVersion
from covex.domain.uris import ModelRef
from covex.service import open_service

STAGES = covex.Settings().stages
INITIAL, ARCHIVED = STAGES[0], "Archived"
ALIASES = ["champion", "challenger", "shadow"]
MODEL = "churn"


@dataclass
class Expected:
    status: str
    stage: str


class RegistryMachine(RuleBasedStateMachine):
    versions = Bundle("versions")  # every number ever handed out, deleted ones included

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.mkdtemp(prefix="covex-machine-")
        self.service = open_service(covex.Settings(uri=self.folder, user="machine"))
        self.service.create_model(MODEL)
        self.last = 0
        self.expected: dict[int, Expected] = {}
        self.aliases: dict[str, int] = {}
        self.uploaded: set[int] = set()

    def teardown(self) -> None:
        self.service.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def payload(version: int) -> bytes:
        return f"weights of version {version}".encode()

    def created(self, version: covex.ModelVersion, status: str) -> int:
        assert self.last + 1 == version.version  # strictly increasing, never reused after a delete
        assert (status, INITIAL, []) == (version.status, version.stage, version.aliases)
        self.last = version.version
        self.expected[version.version] = Expected(status, INITIAL)
        return version.version

    def listed(self) -> list[covex.ModelVersion]:
        return self.service.search_versions(model=MODEL, max_results=1000).items

    # -- rules ----------------------------------------------------------------------------

    @rule(target=versions)
    def create_ready(self) -> int:
        return self.created(
            self.service.create_version(MODEL, NewVersion(source=f"s3://bucket/{self.last + 1}")), "READY"
        )

    @rule(target=versions)
    def create_pending(self) -> int:
        data = self.payload(self.last + 1)
        entry = FileEntry(path="model.bin", digest=hashlib.sha256(data).hexdigest(), size=len(data))
        return self.created(self.service.create_version(MODEL, NewVersion(files=[entry])), "PENDING")

    @rule(version=versions, upload=st.booleans())
    def finalize(self, version: int, upload: bool) -> None:
        exp = self.expected.get(version)
        if exp is None:
            with pytest.raises(covex.NotFound):
                self.service.finalize_version(MODEL, version)
            return
        if upload and exp.status == "PENDING":
            data = self.payload(version)
            self.service.put_blob(hashlib.sha256(data).hexdigest(), len(data), [data])
            self.uploaded.add(version)
        if exp.status == "FAILED":
            with pytest.raises(covex.InvalidState, match="FAILED"):
                self.service.finalize_version(MODEL, version)
        elif exp.status == "PENDING" and version not in self.uploaded:
            with pytest.raises(covex.InvalidState, match=r"model\.bin \(not uploaded\)"):
                self.service.finalize_version(MODEL, version)
        else:
            assert "READY" == self.service.finalize_version(MODEL, version).status
            exp.status = "READY"

    @rule(version=versions)
    def fail(self, version: int) -> None:
        exp = self.expected.get(version)
        if exp is None:
            with pytest.raises(covex.NotFound):
                self.service.fail_version(MODEL, version, "gave up")
        elif exp.status == "READY":
            with pytest.raises(covex.InvalidState):
                self.service.fail_version(MODEL, version, "gave up")
        else:
            failed = self.service.fail_version(MODEL, version, "gave up")
            assert ("FAILED", "gave up") == (failed.status, failed.status_message)
            exp.status = "FAILED"

    @rule(version=versions)
    def delete_version(self, version: int) -> None:
        if version not in self.expected:
            with pytest.raises(covex.NotFound):
                self.service.delete_version(MODEL, version)
            return
        self.service.delete_version(MODEL, version)
        del self.expected[version]
        dropped = [a for a, v in self.aliases.items() if v == version]
        self.aliases = {a: v for a, v in self.aliases.items() if v != version}
        self.assert_unresolved(dropped)  # deleting a version removes its aliases

    @rule(version=versions, stage=st.sampled_from(STAGES), archive_existing=st.booleans(), lower=st.booleans())
    def transition(self, version: int, stage: str, archive_existing: bool, lower: bool) -> None:
        exp = self.expected.get(version)
        asked = stage.lower() if lower else stage  # stage names are case-insensitive
        if exp is None or exp.status != "READY":
            with pytest.raises(covex.NotFound if exp is None else covex.InvalidState):
                self.service.transition_stage(MODEL, version, asked, archive_existing=archive_existing)
            return
        moved = self.service.transition_stage(MODEL, version, asked, archive_existing=archive_existing)
        assert (version, stage) == (moved.version, moved.stage)
        archives = archive_existing and stage not in (INITIAL, ARCHIVED)
        for number, other in self.expected.items():
            if archives and number != version and other.stage == stage:
                other.stage = ARCHIVED
        exp.stage = stage
        if archives:
            assert [version] == [v.version for v in self.listed() if v.stage == stage]

    @rule(alias=st.sampled_from(ALIASES), version=versions)
    def set_alias(self, alias: str, version: int) -> None:
        exp = self.expected.get(version)
        if exp is None or exp.status != "READY":
            with pytest.raises(covex.NotFound if exp is None else covex.InvalidState):
                self.service.set_alias(MODEL, alias, version)
            return
        assert alias in self.service.set_alias(MODEL, alias, version).aliases
        self.aliases[alias] = version

    @rule(alias=st.sampled_from(ALIASES))
    def delete_alias(self, alias: str) -> None:
        if alias not in self.aliases:
            with pytest.raises(covex.NotFound):
                self.service.delete_alias(MODEL, alias)
            return
        self.service.delete_alias(MODEL, alias)
        del self.aliases[alias]
        self.assert_unresolved([alias])

    # -- invariants (one pass, so that every step stays cheap) -------------------------------

    @invariant()
    def registry_equals_model(self) -> None:
        listed = self.listed()
        assert sorted(self.expected, reverse=True) == [v.version for v in listed]  # unique, newest first
        assert all(v.version <= self.last for v in listed)
        expected = {
            n: (e.status, e.stage, sorted(a for a, target in self.aliases.items() if target == n))
            for n, e in self.expected.items()
        }
        assert expected == {v.version: (v.status, v.stage, v.aliases) for v in listed}
        # Every version sits in one configured stage; only READY versions ever leave the initial one.
        assert [] == [(v.version, v.stage) for v in listed if v.stage not in STAGES]
        assert [] == [(v.version, v.status) for v in listed if v.stage != INITIAL and v.status != "READY"]
        model = self.service.get_model(MODEL)
        assert (self.aliases, max(self.expected, default=None)) == (model.aliases, model.latest_version)
        # Each alias resolves to the one existing version that holds it.
        for alias, number in self.aliases.items():
            assert number == self.service.get_version(ModelRef(MODEL, "alias", alias)).version
        ready = [n for n, e in self.expected.items() if e.status == "READY"]
        latest = ModelRef(MODEL, "latest")
        if ready:
            assert max(ready) == self.service.get_version(latest).version
        else:
            with pytest.raises(covex.NotFound):
                self.service.get_version(latest)

    def assert_unresolved(self, aliases: list[str]) -> None:
        for alias in aliases:
            with pytest.raises(covex.NotFound):
                self.service.get_version(ModelRef(MODEL, "alias", alias))


RegistryMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=30, deadline=None)
TestRegistryMachine = pytest.mark.slow(RegistryMachine.TestCase)
