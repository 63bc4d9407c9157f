"""The engine side of PPX: models an inference engine runs, and the recording of runs.

* :mod:`~ppx.engine.model`: the :class:`Model` interface every engine takes;
* :mod:`~ppx.engine.local`: :class:`LocalModel`, a simulator function run in-process;
* :mod:`~ppx.engine.remote`: :class:`RemoteModel`, a simulator process driven over PPX;
* :mod:`~ppx.engine.process`: the simulator subprocess a spawned model owns;
* :mod:`~ppx.engine.model_spec`: :class:`ModelSpec`, a picklable recipe for a model;
* :mod:`~ppx.engine.recorder`: the :class:`Recorder` that turns draws into a trace;
* :mod:`~ppx.engine.blocks`: the engine's half of batched runs;
* :mod:`~ppx.engine.controllers`: who chooses the value of a controlled draw.
"""
