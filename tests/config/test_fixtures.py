"""The TAO reference files in tests/fixtures/tao are the originals, byte for byte.

SHA256SUMS was written when the files were copied (tests/fixtures/tao/README.md); a file edited,
added or removed since makes this test fail, so the compatibility tests always compare against
TAO's real files.
"""

import hashlib


def _recorded(fixtures) -> dict[str, str]:
    rows = (fixtures / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    return {name.removeprefix("./"): digest for digest, name in (row.split(None, 1) for row in rows if row.strip())}


def test_fixture_files_match_their_recorded_hashes(tao_fixtures_dir):
    bank = tao_fixtures_dir / "tao-skill-bank"
    recorded = _recorded(tao_fixtures_dir)
    present = {p.relative_to(bank).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
               for p in bank.rglob("*") if p.is_file()}
    assert set(present) == set(recorded), sorted(set(present) ^ set(recorded))
    changed = [name for name, digest in present.items() if recorded[name] != digest]
    assert not changed, changed
    assert "LICENSE" in present and "models/tao-train-mask-grounding-dino/schemas/train.schema.json" in present
