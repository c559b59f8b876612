# The version of avanzada. Between releases it is already the next release's
# number, and `avanzada --version` says "unreleased" until releases.toml records
# it. Not a `.dev0`: copier skips pre-release tags when it picks the newest
# template, so plain `copier update` would not reach a development build.
__version__ = "0.4.0"
