"""Eligibility criteria -> inclusion / exclusion statements."""

from __future__ import annotations

from polymodal.data.criteria import split_criteria

# Laid out as ClinicalTrials.gov writes it (and as TOP's CSVs hold it): "-  " bullets at column 10,
# wrapped lines indented to column 13, items separated by blank lines, sub-items deeper.
REALISTIC = """
        Inclusion Criteria:

          -  Age >= 18 years.

          -  Histological or cytological diagnosis of metastatic Stage IV or locally advanced,
             unresectable confirmed Stage IIIB nonsquamous Non-Small Cell Lung Cancer (NSCLC) not
             amenable to local therapy with curative intent.

          -  Adequate organ function:

               -  Bilirubin <= 1.5 x upper limit of normal (ULN), or <= 3 x ULN for patients
                  with liver metastases

          -  1.5 x ULN is the creatinine limit

          -  Other inclusion criteria may apply

        Exclusion Criteria:

          1. Hearing impairment

          2. Cardiac disease: congestive heart failure > New York Heart Association (NYHA) Class
             II; patients must not have unstable angina

          -

          3. Pregnancy
      """


def test_realistic_block_gives_one_statement_per_item() -> None:
    inclusion, exclusion = split_criteria(REALISTIC)
    assert inclusion == [
        "Age >= 18 years.",
        "Histological or cytological diagnosis of metastatic Stage IV or locally advanced, unresectable "
        "confirmed Stage IIIB nonsquamous Non-Small Cell Lung Cancer (NSCLC) not amenable to local therapy "
        "with curative intent.",
        "Adequate organ function:",
        "Bilirubin <= 1.5 x upper limit of normal (ULN), or <= 3 x ULN for patients with liver metastases",
        "1.5 x ULN is the creatinine limit",  # a number, not an item number: kept
        "Other inclusion criteria may apply",  # mentions the word, is not a header
    ]
    assert exclusion == [
        "Hearing impairment",
        "Cardiac disease: congestive heart failure > New York Heart Association (NYHA) Class II; patients "
        "must not have unstable angina",
        "Pregnancy",  # the lone "-" item is dropped
    ]


def test_no_header_means_all_inclusion() -> None:
    text = "Adults aged 18 to 65\n\nSigned informed consent"
    assert split_criteria(text) == (["Adults aged 18 to 65", "Signed informed consent"], [])


def test_empty_and_blank_text() -> None:
    assert split_criteria("") == ([], [])
    assert split_criteria("   \n\n  \n") == ([], [])


def test_exclusion_header_only() -> None:
    text = "\n        Exclusion Criteria:\n\n          -  Prior chemotherapy\n\n          -  Pregnancy\n"
    assert split_criteria(text) == ([], ["Prior chemotherapy", "Pregnancy"])


def test_header_case_and_qualifier_variants() -> None:
    for inc, exc in [("INCLUSION CRITERIA", "EXCLUSION CRITERIA:"), ("Key Inclusion Criteria:",
                                                                     "Key exclusion criteria"),
                     ("Inclusion:", "Exclusion criteria - for Phase I"), ("-  INCLUSION CRITERIA:",
                                                                          "Main Exclusion Criteria :")]:
        text = f"{inc}\n\n  -  Adults\n\n{exc}\n\n  -  Children\n"
        assert split_criteria(text) == (["Adults"], ["Children"]), (inc, exc)


def test_header_without_blank_line_and_list_without_blank_lines() -> None:
    text = (
        "        Inclusion Criteria:\n"
        "          -  Adults with type 2 diabetes\n"
        "          -  HbA1c between 7% and 10%\n"
        "        Exclusion Criteria:\n"
        "          -  Type 1 diabetes\n"
    )
    assert split_criteria(text) == (["Adults with type 2 diabetes", "HbA1c between 7% and 10%"],
                                     ["Type 1 diabetes"])


def test_inline_header_and_flattened_items() -> None:
    text = "Inclusion Criteria: - Confirmed solid tumour. - ECOG 0-1.\n\nExclusion Criteria:\n\n- Pregnancy"
    assert split_criteria(text) == (["Confirmed solid tumour.", "ECOG 0-1."], ["Pregnancy"])


def test_stray_blank_line_inside_an_item_is_joined() -> None:
    text = ("          -  Stable disease under metformin (between 1500-3000\n\n"
            "        mg/day) for at least 3 months\n\n          -  BMI below 40\n")
    assert split_criteria(text)[0] == ["Stable disease under metformin (between 1500-3000 mg/day) for at "
                                       "least 3 months", "BMI below 40"]


def test_parenthesised_abbreviation_is_not_a_bullet() -> None:
    text = "        Metformin and a Sulfonylurea Derivative\n        (SUD) for at least 3 months\n"
    assert split_criteria(text)[0] == ["Metformin and a Sulfonylurea Derivative (SUD) for at least 3 months"]


def test_windows_line_endings() -> None:
    text = "Inclusion Criteria:\r\n\r\n  -  Adults\r\n\r\nExclusion Criteria:\r\n\r\n  -  Children\r\n"
    assert split_criteria(text) == (["Adults"], ["Children"])
