# Reads the enclave image measurements that eif-build prints (nitro-cli's form:
# {"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": "..", "PCR1": "..", "PCR2": "..",
# "PCR8"?: ".."}}, or the same keys at the top level) and checks them as `cohort kms policy` does
# (cli/src/kms.rs): PCR0, PCR1 and PCR2 present, each PCR 48 bytes of hex and not all zero (a
# debug-mode image). Several files allow an image rotation: every file is one allowed image.
#
# No resources: the node and coordinator modules call this one, so the KMS key policies and the
# /etc/cohort/measurements*.json files on the instances come from the same files, never from
# hand-copied PCR values.

locals {
  documents = [for f in var.files : file(f)]
  decoded   = [for d in local.documents : try(jsondecode(d), {})]
  raw       = [for doc in local.decoded : try(doc.Measurements, doc)]

  # Lowercase hex of PCR0, PCR1, PCR2 and (when signed) PCR8 of each image.
  images = [
    for m in local.raw : {
      for k, v in m : k => try(lower(v), "") if contains(["PCR0", "PCR1", "PCR2", "PCR8"], k)
    }
  ]

  problems = flatten([
    for i, img in local.images : concat(
      [for k in ["PCR0", "PCR1", "PCR2"] : "${var.files[i]}: ${k} is missing" if !contains(keys(img), k)],
      [
        for k, v in img : "${var.files[i]}: ${k} is not a 48-byte SHA-384 measurement of a release image"
        if !can(regex("^[0-9a-f]{96}$", v)) || can(regex("^0{96}$", v))
      ],
    )
  ])
}
