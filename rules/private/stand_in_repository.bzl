"""A repository rule that lays out one of torchpack's offline stand-ins (third_party/bazel_shims).

`local_repository` would need a path, which a `.bzl` file cannot compute for a folder inside
another repository (torchpack may be a `local_repository`, an `http_archive`, ...): this rule
finds the folder from a label instead and links its files.
"""

def _stand_in_repository_impl(rctx):
    folder = rctx.path(rctx.attr.workspace_file).dirname
    for entry in folder.readdir():
        rctx.symlink(entry, entry.basename)

stand_in_repository = repository_rule(
    implementation = _stand_in_repository_impl,
    doc = "Links the files of an offline stand-in (a folder of `third_party/bazel_shims/`).",
    attrs = {
        "workspace_file": attr.label(
            mandatory = True,
            allow_single_file = True,
            doc = "The stand-in's `WORKSPACE` file; every file beside it is linked.",
        ),
    },
)
