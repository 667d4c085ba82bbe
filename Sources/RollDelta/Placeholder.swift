// The delta core lands here.
public enum RollDeltaPlaceholder {}
