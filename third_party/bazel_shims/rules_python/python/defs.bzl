"""Stand-in for @rules_python//python:defs.bzl on Bazel 4.2.3: the native Python rules.

BUILD files load Python rules from here so that the same files work with the real rules_python
on Bazel 7+, where the native rules are gone.
"""

load("@bazel_tools//tools/python:toolchain.bzl", _py_runtime_pair = "py_runtime_pair")
load(":_builtins.bzl", "BuiltinPyInfo", "BuiltinPyRuntimeInfo")

PyInfo = BuiltinPyInfo
PyRuntimeInfo = BuiltinPyRuntimeInfo

def py_binary(**kwargs):
    native.py_binary(**kwargs)

def py_library(**kwargs):
    native.py_library(**kwargs)

def py_test(**kwargs):
    native.py_test(**kwargs)

def py_runtime(**kwargs):
    native.py_runtime(**kwargs)

def py_runtime_pair(**kwargs):
    _py_runtime_pair(**kwargs)
