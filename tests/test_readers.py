import gzip

import pytest

from conftest import FIXTURE_SETTINGS, make_settings
from llm4sbr_core.data.readers import read_raw, render_text
from llm4sbr_core.errors import ConfigError, DataFormatError


def read(fmt, folder, **overrides):
    return read_raw(make_settings(FIXTURE_SETTINGS[fmt], **overrides), folder, "dataset_settings.d")


def clicks(raw):
    df = raw.interactions.sort_values(["user", "time", "line"], kind="stable")
    return {u: g["item"].tolist() for u, g in df.groupby("user", sort=True)}


# ---------------------------------------------------------------- the four formats
def test_amazon(fixture_dir):
    raw = read("amazon", fixture_dir("amazon"))
    assert clicks(raw) == {"RA": ["B001", "B002", "B003"], "RB": ["B001", "B002", "B003"],
                           "RC": ["B003"]}
    # B999 is never clicked; B003 has no title
    assert raw.item_text == {"B001": "Rose Lip Balm", "B002": "Men's Shave Gel", "B003": ""}
    assert raw.time_kind == "timestamp"


def test_csv(fixture_dir):
    raw = read("csv", fixture_dir("csv"))
    assert clicks(raw) == {"10": ["X1", "X2"], "2": ["X3", "X1"], "9": ["X2", "X3", "X1"]}
    assert raw.item_text == {"X1": "Shampoo, 250 ml", "X2": "Conditioner", "X3": ""}
    assert raw.time_kind == "position"


def test_movielens_latin1_and_text(fixture_dir):
    raw = read("movielens", fixture_dir("movielens"))
    assert raw.item_text["20"] == "Amélie (2001) -- Comedy|Romance"
    assert clicks(raw)["1"] == ["20", "10", "30"]
    assert len(raw.interactions) == 6


def test_movielens_gzipped(fixture_dir):
    folder = fixture_dir("movielens")
    data = (folder / "ratings.dat").read_bytes()
    with gzip.open(folder / "ratings.dat.gz", "wb") as f:
        f.write(data)
    raw = read("movielens", folder, files={"interactions": "ratings.dat.gz"})
    assert len(raw.interactions) == 6


def test_recbole(fixture_dir):
    raw = read("recbole", fixture_dir("recbole"))
    assert clicks(raw) == {"1": ["7", "8", "9"], "2": ["7", "9"]}
    assert raw.item_text == {"7": "Toy Story (1995) -- Animation Comedy",
                             "8": "Heat (1995) -- Action", "9": "Babe -- Drama"}


def test_render_text_empty_fields():
    assert render_text("{title} ({year})", {"title": "Babe", "year": ""}) == "Babe"
    assert render_text("{title} ({year})", {"title": " ", "year": ""}) == ""


# ---------------------------------------------------------------- malformed input
def test_malformed_json_line_names_file_and_line(fixture_dir):
    folder = fixture_dir("amazon")
    path = folder / "reviews_Test_5.json.gz"
    lines = gzip.open(path, "rt").read().splitlines()
    lines[2] = lines[2][:-5]  # cut the closing brace off line 3
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"reviews_Test_5\.json\.gz:3: not a JSON object"):
        read("amazon", folder)
    # one line of seven is more than the default 1 % a file may lose
    with pytest.raises(DataFormatError, match=r"reviews_Test_5\.json\.gz:3: 1 of 7 lines .*"
                                              r"'dataset_settings\.d\.max_skipped_fraction'"):
        read("amazon", folder, on_bad_line="skip")
    raw = read("amazon", folder, on_bad_line="skip", max_skipped_fraction=0.2)
    assert raw.skipped_lines == {str(path): 1}
    assert len(raw.interactions) == 6


def test_review_missing_field(fixture_dir):
    folder = fixture_dir("amazon")
    with gzip.open(folder / "reviews_Test_5.json.gz", "at") as f:
        f.write('{"reviewerID": "RZ", "asin": "B001"}\n')
    with pytest.raises(DataFormatError, match=r":8: review lacks"):
        read("amazon", folder)


def test_metadata_is_never_evaluated(fixture_dir, tmp_path):
    folder = fixture_dir("amazon")
    marker = tmp_path / "pwned"
    with gzip.open(folder / "meta_Test.json.gz", "at") as f:
        f.write(f"__import__('pathlib').Path({str(marker)!r}).touch()\n")
    with pytest.raises(DataFormatError, match=r"meta_Test\.json\.gz:5: not a Python-literal"):
        read("amazon", folder)
    assert not marker.exists()


def test_truncated_gzip(fixture_dir):
    folder = fixture_dir("amazon")
    path = folder / "reviews_Test_5.json.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(DataFormatError, match="truncated or corrupt"):
        read("amazon", folder)


def test_wrong_delimiter_hint(fixture_dir):
    folder = fixture_dir("csv")
    for name in ("interactions.csv", "items.csv"):
        path = folder / name
        path.write_text(path.read_text().replace(",", ";"))
    with pytest.raises(DataFormatError, match=r"interactions\.csv:1: .*is the delimiter ';'"):
        read("csv", folder)
    assert len(read("csv", folder, delimiter=";").interactions) == 7


def test_non_utf8_bytes_name_the_line(fixture_dir):
    folder = fixture_dir("csv")
    path = folder / "items.csv"
    path.write_bytes(path.read_bytes().replace(b"Conditioner", b"Condition\xe9r"))
    with pytest.raises(DataFormatError, match=r"items\.csv:3: bytes b'\\xe9' at column 13"):
        read("csv", folder)
    assert read("csv", folder, encoding="latin-1").item_text["X2"] == "Conditionér"


def test_wrong_field_count_and_bad_time(fixture_dir):
    folder = fixture_dir("csv")
    path = folder / "interactions.csv"
    path.write_text(path.read_text() + "5,X9\n")
    with pytest.raises(DataFormatError, match=r"interactions\.csv:9: expected 3 fields"):
        read("csv", folder)
    path.write_text(path.read_text().replace("5,X9\n", "5,X9,first\n"))
    with pytest.raises(DataFormatError, match=r":9: 'position' is not a number"):
        read("csv", folder)


def test_missing_column(fixture_dir):
    with pytest.raises(DataFormatError, match=r"missing column\(s\) \['ts'\]"):
        read("csv", fixture_dir("csv"), columns={"time": "ts"})


def test_template_field_not_in_items_file(fixture_dir):
    with pytest.raises(ConfigError, match=r"text_template.*\['name'\]"):
        read("csv", fixture_dir("csv"), text_template="{name}")


def test_duplicate_rows(fixture_dir):
    folder = fixture_dir("csv")
    path = folder / "interactions.csv"
    path.write_text(path.read_text() + "9,X3,1\n")
    with pytest.raises(DataFormatError, match=r"interactions\.csv:9: duplicate of line 5"):
        read("csv", folder)
    raw = read("csv", folder, duplicates="drop")
    assert raw.dropped_duplicates == 1 and len(raw.interactions) == 7


def test_two_items_at_one_position(fixture_dir):
    folder = fixture_dir("csv")
    path = folder / "interactions.csv"
    path.write_text(path.read_text() + "9,X1,1\n")
    with pytest.raises(DataFormatError, match="two items at position 1"):
        read("csv", folder, duplicates="drop")


def test_conflicting_item_text(fixture_dir):
    folder = fixture_dir("csv")
    path = folder / "items.csv"
    path.write_text(path.read_text() + "X2,Other conditioner\n")
    with pytest.raises(DataFormatError, match=r"items\.csv:5: item id 'X2' already appeared on "
                                              r"line 3 with a different text"):
        read("csv", folder)


def test_recbole_bad_header(fixture_dir):
    folder = fixture_dir("recbole")
    path = folder / "test.inter"
    path.write_text(path.read_text().replace("rating:float", "rating"))
    with pytest.raises(DataFormatError, match=r"test\.inter:1: header field 'rating'"):
        read("recbole", folder)


def test_movielens_wrong_separator(fixture_dir):
    folder = fixture_dir("movielens")
    path = folder / "ratings.dat"
    path.write_text(path.read_text().replace("::", "\t", 4))
    with pytest.raises(DataFormatError, match=r"ratings\.dat:1: expected 4 '::'-separated"):
        read("movielens", folder)


def test_missing_file(fixture_dir):
    with pytest.raises(DataFormatError, match="file not found"):
        read("recbole", fixture_dir("recbole"), files={"interactions": "nope.inter"})


def test_empty_interactions(fixture_dir):
    folder = fixture_dir("recbole")
    (folder / "test.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n")
    with pytest.raises(DataFormatError, match="no interactions"):
        read("recbole", folder)


def test_item_texts_missing_from_the_item_file(fixture_dir):
    from llm4sbr_core.data.build import prepare_dataset

    folder = fixture_dir("csv")
    (folder / "items.csv").write_text("item_id,title\nX1,Shampoo\nX3,Mask\nX7,Unused\n")
    settings = make_settings(FIXTURE_SETTINGS["csv"], filter={"min_item_count": 1})
    _, items, stats = prepare_dataset(settings, folder.parent, "csv")
    assert dict(zip(items["raw_id"], items["text"], strict=True))["X2"] == "item X2"
    assert (stats["items_without_text"], stats["items_not_in_item_file"],
            stats["item_file_rows_unused"]) == (1, 1, 1)
    settings["missing_text"] = "error"
    with pytest.raises(DataFormatError, match=r"items\.csv: item 'X2' has no row"):
        prepare_dataset(settings, folder.parent, "csv")


@pytest.mark.parametrize("fmt", sorted(FIXTURE_SETTINGS))
def test_fixtures_read_without_warnings(fmt, fixture_dir, caplog):
    """The checks of time scales, skips and ids stay silent on well-formed files."""
    caplog.set_level("WARNING")
    read(fmt, fixture_dir(fmt))
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_item_record_over_several_lines_counts_every_line(fixture_dir):
    folder = fixture_dir("csv")
    path = folder / "items.csv"
    path.write_text('item_id,title\nX1,"Shampoo\n250 ml",extra\nX2,Conditioner\nX3,Mask\n')
    with pytest.raises(DataFormatError, match=r"items\.csv:2: expected 2 fields .*, found 3 "
                                              r"\(a record over lines 2-3"):
        read("csv", folder)
    raw = read("csv", folder, on_bad_line="skip", max_skipped_fraction=0.5)
    assert raw.skipped_lines == {str(path): 2}
    assert raw.item_text == {"X2": "Conditioner", "X3": "Mask"}


def test_ids_are_nfc_and_a_nul_byte_is_rejected(fixture_dir):
    folder = fixture_dir("csv")
    nfd, nfc = "Cafe\u0301", "Caf\u00e9"
    (folder / "interactions.csv").write_text(f"user_id,item_id,position\nu,{nfd},0\n"
                                             f"u,{nfc},1\n")
    (folder / "items.csv").write_text(f"item_id,title\n{nfd},Coffee\n")
    raw = read("csv", folder)
    assert raw.interactions["item"].tolist() == [nfc, nfc]
    assert raw.item_text == {nfc: "Coffee"}

    folder = fixture_dir("movielens")
    path = folder / "ratings.dat"
    path.write_bytes(path.read_bytes().replace(b"2::10::", b"2::1\x00::"))
    with pytest.raises(DataFormatError, match=r"ratings\.dat:4: item '1\\x00' contains a NUL"):
        read("movielens", folder)
