"""The version of segnode: the one place it is written.

``segnode/__init__.py`` re-exports it, setup.py reads it from this file (without importing
segnode) and test/test_layout.py checks that package.xml says the same.
"""

__version__ = '0.1.0'
