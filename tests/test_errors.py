from firewall_routing.errors import InputError


def test_error_names_file_row_field() -> None:
    e = InputError("must be a number", path="t.jsonl", row=3, field="weak_pass_rate")
    assert str(e) == "t.jsonl:3 field 'weak_pass_rate': must be a number"


def test_control_characters_from_user_data_stay_on_one_line() -> None:
    # a field name read from a user's file may hold a newline (found by the RouterDC fuzz test)
    e = InputError("got 'a\tb'", path="f.json", row=1, field="scores.\n")
    assert str(e) == "f.json:1 field 'scores.\\n': got 'a\\tb'"
    assert "\n" not in str(e) and "\t" not in str(e)
