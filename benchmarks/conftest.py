import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
