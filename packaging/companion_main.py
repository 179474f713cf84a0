"""The frozen app's entry point: the `companion` command (companion.cli), plus the internal
`--probe-page` entry `companion doctor` runs in a subprocess."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    if sys.argv[1:] == ["--probe-page"]:
        from companion.doctor import main as doctor_main

        raise SystemExit(doctor_main(["--probe-page"]))
    from companion.cli import main

    main(prog_name="companion")
