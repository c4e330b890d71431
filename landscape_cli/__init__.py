"""The ``landscape`` command: the front door, the one package that knows the core, ``analysis`` and ``dss``.

One module per command group (``sample``, ``diagnose``, ``analyze``, ``rotation``, ``dss``, ``minima``), each with
``add_arguments(parser)`` and ``run(args)``; :mod:`landscape_cli.main` imports a command's module only when that
command is asked for, so ``landscape --help`` stays fast. Shared helpers live in :mod:`landscape_cli.common`.
"""
