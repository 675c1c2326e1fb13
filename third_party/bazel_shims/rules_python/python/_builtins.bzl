"""Binds the native PyInfo under another name: defs.bzl cannot write `PyInfo = PyInfo`."""

BuiltinPyInfo = PyInfo
BuiltinPyRuntimeInfo = PyRuntimeInfo
