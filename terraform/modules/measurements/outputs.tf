output "images" {
  description = "Per allowed image, its PCRs by name (PCR0, PCR1, PCR2, PCR8 when present), lowercase hex."
  value       = local.images

  precondition {
    condition     = length(local.problems) == 0
    error_message = "Bad measurements: ${join("; ", local.problems)}."
  }
}

output "documents" {
  description = "The measurements files' contents, verbatim, in the order given: written to /etc/cohort/measurements.json (first) and /etc/cohort/measurements-N.json (N >= 1) on the instances."
  value       = local.documents
}

output "paths" {
  description = "Where each document lands on an instance, in the same order."
  value       = [for i, _ in local.documents : i == 0 ? "/etc/cohort/measurements.json" : "/etc/cohort/measurements-${i}.json"]
}
