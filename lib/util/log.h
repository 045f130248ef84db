#pragma once

#include <string>

namespace podsteer {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

// Logs go to stderr, or to `logFile` when one is configured (errors go to both, so a
// runtime that shows the plugin's stderr still shows why it failed). Never to stdout:
// stdout carries only the CNI result.
class Logger {
public:
  static Logger& instance();
  void configure(LogLevel level, const std::string& file, const std::string& context);
  void log(LogLevel level, const std::string& msg);

private:
  LogLevel level_ = LogLevel::kInfo;
  std::string file_;
  std::string context_;
};

inline void logDebug(const std::string& m) { Logger::instance().log(LogLevel::kDebug, m); }
inline void logInfo(const std::string& m) { Logger::instance().log(LogLevel::kInfo, m); }
inline void logWarn(const std::string& m) { Logger::instance().log(LogLevel::kWarn, m); }
inline void logError(const std::string& m) { Logger::instance().log(LogLevel::kError, m); }

} // namespace podsteer
