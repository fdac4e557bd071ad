// The doctest main, and a listener that counts the test cases each suite ran: printed at the end of
// every run, and written to $RILL_TEST_REPORT_DIR/suites-<pid>.txt when that is set, so the test
// script can fail a stage in which a suite that should run ran none (a renamed suite, a filter that
// no longer matches, a file dropped from the build).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

namespace {

struct SuiteCounter : doctest::IReporter {
  std::map<std::string, int> cases;
  explicit SuiteCounter(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {
    if (cases.empty()) return;  // --help, --list-*, or a filter that matched nothing: the script sees no file
    std::string line;
    for (const auto& [suite, n] : cases) {
      if (!line.empty()) line += ", ";
      line += suite + " " + std::to_string(n);
    }
    std::printf("[doctest] cases per suite: %s\n", line.c_str());
    if (const char* dir = std::getenv("RILL_TEST_REPORT_DIR")) {
      const std::string path = std::string(dir) + "/suites-" + std::to_string(getpid()) + ".txt";
      if (FILE* f = std::fopen(path.c_str(), "a")) {
        for (const auto& [suite, n] : cases) std::fprintf(f, "%s %d\n", suite.c_str(), n);
        std::fclose(f);
      }
    }
  }
  void test_case_start(const doctest::TestCaseData& tc) override {
    ++cases[tc.m_test_suite && *tc.m_test_suite ? tc.m_test_suite : "no_suite"];
  }
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

REGISTER_LISTENER("suite_counter", 1, SuiteCounter);

}  // namespace
