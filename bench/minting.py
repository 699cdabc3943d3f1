"""Minting an access token in process, against the signature it cannot avoid.

Figures (each contender and its baseline alternate in rounds; medians reported):
- mint_access_token with typical claims vs a bare `cryptography` ES256 sign of a
  same-size payload: claims, JSON, base64, the r||s conversion and the ring's
  change check must cost little on top of the signature (issue 14: >= 0.85x).
- KeyRing.jwks() (the cached body + ETag the JWKS endpoint serves) vs building
  them from the in-memory manifest per call, as an uncached endpoint would.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from bench.report import Figure, median
from issuer.keys import KeyRing, jwks_document
from issuer.tokens import mint_access_token

ROUNDS = 7
ROUND_SECONDS = 0.4


def throughput(operation: Callable[[], object], seconds: float = ROUND_SECONDS) -> float:
    """Calls per CPU second over about `seconds`, in batches so the timer costs nothing.

    CPU time of this process rather than wall time: both sides of a ratio are
    single-threaded and in process, and CPU time does not count the moments the
    other work on a shared 2-core machine holds the processor.
    """
    batch, calls, start = 64, 0, time.process_time()
    while True:
        for _ in range(batch):
            operation()
        calls += batch
        elapsed = time.process_time() - start
        if elapsed >= seconds:
            return calls / elapsed


def duel(contender: Callable[[], object], baseline: Callable[[], object]) -> tuple[float, float]:
    """Median throughputs of both, measured in alternating rounds (fair to CPU drift)."""
    ours, theirs = [], []
    for _ in range(ROUNDS):
        ours.append(throughput(contender))
        theirs.append(throughput(baseline))
    return median(ours), median(theirs)


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp:
        ring = KeyRing(Path(tmp) / "keys")
        ring.init()

        def mint() -> str:
            return mint_access_token(
                ring,
                issuer="http://127.0.0.1:8001",
                subject="0b6f3c1e-8a57-4d0e-9a51-2f1f7c9d4e21",
                audience="neon",
                ttl=900,
                scope="openid profile email todos",
                client_id="todo-app",
                role="authenticated",
                extra_claims={"email": "alice@example.com"},
            )

        signing_input = mint().rpartition(".")[0].encode("ascii")
        private_key = ring.signing_key().private_key
        algorithm = ec.ECDSA(hashes.SHA256())

        def raw_sign() -> bytes:
            return private_key.sign(signing_input, algorithm)

        manifest = ring.manifest()
        minted, signed = duel(mint, raw_sign)
        served, rebuilt = duel(ring.jwks, lambda: jwks_document(manifest))
    return [
        Figure(
            "minting",
            f"mint_access_token ({len(signing_input)} B signed)",
            "tokens/s",
            minted,
            "raw cryptography ES256 sign, same size",
            signed,
            ">= 0.85",
        ),
        Figure(
            "minting",
            "KeyRing.jwks() cached body + ETag",
            "calls/s",
            served,
            "serialise body + ETag per call",
            rebuilt,
            ">= 10",
        ),
    ]
