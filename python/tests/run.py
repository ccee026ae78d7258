"""Runs python/tests/test_*.py with unittest and ends with the line `make test` counts:
"test_python: N passed, N failed, N skipped". Exit status 1 when any test failed or errored."""
import os
import sys
import unittest

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, ".."))           # python/: the package under test
suite = unittest.defaultTestLoader.discover(here, pattern="test_*.py", top_level_dir=here)
res = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
bad = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
skipped = len(res.skipped)
print("test_python: %d passed, %d failed, %d skipped" % (res.testsRun - bad - skipped, bad, skipped))
sys.exit(1 if bad or res.testsRun == 0 else 0)
