"""Terminal tables keep to 120 columns and repeated notes are printed once with their count."""

from medprobe.cli.formatting import WIDTH, abbreviated, aligned, grouped_notes


def test_a_wide_table_is_printed_in_blocks_that_repeat_its_key_column() -> None:
    header = ["model", *(f"metric_{i}" for i in range(12))]
    rows = [[name, *(f"0.{i}00 [0.{i}10, 0.{i}90]" for i in range(12))] for name in ("alpha", "beta")]
    text = aligned(header, rows, right_numbers=False)
    lines = text.splitlines()
    assert max(map(len, lines)) <= WIDTH
    blocks = text.split("\n\n")
    assert len(blocks) > 1 and all(block.splitlines()[0].startswith("model") for block in blocks)
    shown = [cell for block in blocks for cell in block.splitlines()[0].split()[1:]]
    assert shown == header[1:]  # every column once, in order
    assert aligned(["a", "b"], [["1", "x"]]) == "a  b\n1  x"  # a narrow table is one block


def test_a_long_cell_is_shortened_in_the_middle() -> None:
    path = "/data/site-a/" + "nested/" * 20 + "scan.nii.gz"
    short = abbreviated(path)
    assert len(short) == 56 and short.startswith("/data/site-a/") and short.endswith("scan.nii.gz") and "…" in short
    assert abbreviated("short") == "short"


def test_the_same_note_from_many_runs_is_printed_once_with_its_count() -> None:
    items = [(f"model{i}/age/linear", "fold count reduced to 3") for i in range(30)] + [("m/age/knn", "k capped")]
    lines = grouped_notes(items)
    assert lines[0].startswith("  fold count reduced to 3 (30×: model0/age/linear, model1/age/linear")
    assert lines[-1] == "  m/age/knn: k capped"
    assert max(map(len, lines)) <= WIDTH and sum("model29/age/linear" in line for line in lines) == 1
