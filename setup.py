"""The optional C extension (issue 27): the native UDP fast path, dnsbalance/_native.c. Everything else is in
pyproject.toml. `optional=True`: without a C compiler or Python's headers the build warns and goes on, and
dnsbalance runs its pure-Python fast path (dnsbalance/answer/native.py chooses at start)."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("dnsbalance._native", ["dnsbalance/_native.c"], optional=True,
                             extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                                 "-Wno-missing-field-initializers"])])
