"""The release set: ``nativelib release`` builds every runtime wheel of a release file
(:mod:`nativelib.release.releasefile`) through the build pipeline, and the project's own
sdist and wheel (:mod:`nativelib.release.project`), into one directory
(:mod:`nativelib.release.build`); :mod:`nativelib.release.coverage` asks pip which version
of each runtime installs on which manylinux platform."""
