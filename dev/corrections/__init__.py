"""The correction-loop study: simulated users draw corrections on real scenes; the
fine-tuned model is scored on the part of the image nobody drew on."""
