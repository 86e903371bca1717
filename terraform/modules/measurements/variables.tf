variable "files" {
  description = "Measurements files printed by eif-build, one per allowed enclave image (more than one during an image rotation)."
  type        = list(string)

  validation {
    condition     = length(var.files) > 0
    error_message = "At least one measurements file is needed."
  }

  validation {
    condition     = alltrue([for f in var.files : can(jsondecode(file(f)))])
    error_message = "Every measurements file must exist and hold JSON."
  }
}
