# The measurements reader accepts what `cohort kms policy` accepts (cli/src/kms.rs) and refuses
# what it refuses. Fixtures are made-up SHA-384 values, not real images.

run "nitro_cli_form_and_top_level_form" {
  command = plan

  variables {
    files = ["tests/signed.json", "tests/top-level.json"]
  }

  assert {
    condition     = length(output.images) == 2
    error_message = "One image per file."
  }

  assert {
    condition     = sort(keys(output.images[0])) == tolist(["PCR0", "PCR1", "PCR2", "PCR8"])
    error_message = "A signed image keeps PCR8; HashAlgorithm is dropped."
  }

  assert {
    condition     = sort(keys(output.images[1])) == tolist(["PCR0", "PCR1", "PCR2"])
    error_message = "The top-level form is read too."
  }

  assert {
    condition     = output.images[0].PCR0 == lower(jsondecode(file("tests/signed.json")).Measurements.PCR0)
    error_message = "PCR values are lowercased."
  }

  assert {
    condition     = output.paths == ["/etc/cohort/measurements.json", "/etc/cohort/measurements-1.json"]
    error_message = "The first file lands in /etc/cohort/measurements.json, the next ones numbered."
  }

  assert {
    condition     = output.documents[1] == file("tests/top-level.json")
    error_message = "Documents are the files' contents, verbatim."
  }
}

run "missing_pcr_is_refused" {
  command = plan
  variables {
    files = ["tests/missing-pcr1.json"]
  }
  expect_failures = [output.images]
}

run "debug_image_is_refused" {
  command = plan
  variables {
    files = ["tests/debug-image.json"]
  }
  expect_failures = [output.images]
}

run "short_pcr_is_refused" {
  command = plan
  variables {
    files = ["tests/short-pcr.json"]
  }
  expect_failures = [output.images]
}

run "missing_file_is_refused" {
  command = plan
  variables {
    files = ["tests/no-such-file.json"]
  }
  expect_failures = [var.files]
}
