"""py-traceback: a guard detector written in Python (componentize-py).

It follows Python tracebacks through a log and reports the last uncaught
exception with the frame that raised it, classified by exception type.
The scan resource lives in detector.py (componentize-py looks for an
exported resource in the module named after its interface).
"""

from wit_world import exports
from wit_world.imports import types


class Detector(exports.Detector):
    def info(self) -> types.PluginInfo:
        return types.PluginInfo(
            id="py-traceback",
            version="0.1.0",
            description="Python tracebacks: the uncaught exception and the frame that raised it",
        )
