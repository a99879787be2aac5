"""The GAN-theory properties of scratchgan's own losses and penalties, through the testing kit.

Run against the installed package, from any folder::

    python -m pytest --pyargs scratchgan.testing -p no:cacheprovider
"""

import pytest

from .builtin import CHECKS


@pytest.mark.parametrize("name", list(CHECKS))
def test_builtin(name):
    report = CHECKS[name]()
    assert report.ok
