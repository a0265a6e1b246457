"""The concealed allocation list, allocation of slots, masking and emergency unblinding."""
