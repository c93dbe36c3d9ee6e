"""What every process shares and nothing here runs: a target's declaration (``target``, ``domain``), the
project and its candidates found by reading their source (``project``, ``candidates``), the settings
(``config``), the wire between judge and runners (``protocol``), the result schema (``result``), the
statistics (``stats``), facts about this machine (``machine``), number formats (``fmt``) and ``errors``.
Imports nothing from the other subpackages."""
