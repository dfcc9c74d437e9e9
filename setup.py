"""The optional C extensions: the native UDP fast path (issue 27, dnsbalance/_native.c) and DNSSEC signing in
batches with libcrypto (issue 25, dnsbalance/_sign.c). Everything else is in pyproject.toml. `optional=True`:
without a C compiler, Python's headers or libssl-dev the build warns and goes on, and dnsbalance runs its
pure-Python fast path (dnsbalance/answer/native.py chooses at start) or signs through `cryptography`
(dnsbalance/dnssec/signer.py)."""
from setuptools import Extension, setup

FLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]

setup(ext_modules=[Extension("dnsbalance._native", ["dnsbalance/_native.c"], optional=True, extra_compile_args=FLAGS),
                   Extension("dnsbalance._sign", ["dnsbalance/_sign.c"], optional=True, extra_compile_args=FLAGS,
                             libraries=["crypto"])])
