"""Running the CLI in-process and checking its one-sentence errors."""

from landscape_cli.main import main


def run_cli(capsys, *args):
    try:
        code = main(["-q", *args])
    except SystemExit as exc:  # argparse errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_sentence_error(code, err):
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "error" in lines[0]
