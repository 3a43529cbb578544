"""Run asgiref 1.x's own ConformanceTestCase, unmodified, against switchroom.layers.asgi1.

Runs inside the interop virtualenv (where asgiref 1.1.2 is installed), started by
``test_conformance.py``::

    python run_conformance.py LAYER_URL [LAYER_URL ...]

Several URLs are shards of one layer. Prints unittest's report and a last line of JSON
counts; exits non-zero unless every test ran and passed.
"""

import json
import sys
import unittest
import uuid
from importlib.metadata import version

from asgiref.conformance import ConformanceTestCase

from switchroom.layers.asgi1 import ChannelLayer

EXPIRY = 1
GROUP_EXPIRY = 1
CAPACITY = 5


def main(urls: list[str]) -> int:
    """Run the suite on a layer over ``urls`` and report whether all of it passed."""
    options = {} if urls == ["memory://"] else {"prefix": f"conformance-{uuid.uuid4().hex[:8]}"}
    layer = ChannelLayer(
        urls,
        expiry=EXPIRY,
        group_expiry=GROUP_EXPIRY,
        capacity=CAPACITY,
        process_capacity=CAPACITY,
        **options,
    )
    case = type(
        "SwitchroomConformance",
        (ConformanceTestCase,),
        {"channel_layer": layer, "expiry_delay": EXPIRY + 0.1, "capacity_limit": CAPACITY},
    )
    try:
        suite = unittest.defaultTestLoader.loadTestsFromTestCase(case)
        result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
    finally:
        layer.flush()
        layer.close()
    counts = {
        "asgiref": version("asgiref"),
        "run": result.testsRun,
        "failures": len(result.failures),
        "errors": len(result.errors),
        "skipped": len(result.skipped),
    }
    print(json.dumps(counts))
    return 0 if result.wasSuccessful() and not result.skipped else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
