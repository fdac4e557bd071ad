// Test driver for the ROS round trip: publishes recorded inputs to the node one at a time, waits for
// each reply, and records the replies. Records are separated by NUL bytes; an input record "\x01reset"
// calls the node's reset service instead of publishing. With a 6th argument "vector", each record is a
// line of floats published as std_msgs/Float32MultiArray, and each reply is recorded the same way.
// With "stamped", each record is published as rill_msgs/VectorStamped with header.seq 1, 2, ... and
// stamp 1000 s + seq ms; a record "\x03" + floats is a bad one (the node must refuse it: no reply is
// awaited), and each reply is recorded as "seq stamp_ns | floats".
// With "burst N", one stamped vector goes out and is answered, then N as fast as possible, then one more
// after a second; the replies are counted and the node's last /diagnostics values recorded:
// "published=P replies=R key=value ...".
//
//   roundtrip_driver INPUT_TOPIC OUTPUT_TOPIC RESET_SERVICE INPUTS_FILE REPLIES_FILE [vector|stamped|burst N]
#include <diagnostic_msgs/DiagnosticArray.h>
#include <ros/ros.h>
#include <rill_msgs/VectorStamped.h>
#include <std_msgs/Float32MultiArray.h>
#include <std_msgs/String.h>
#include <std_srvs/Empty.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

namespace {
std::string floats_line(const std::vector<float>& v) {
  std::string line;
  char buf[32];
  for (float x : v) {
    std::snprintf(buf, sizeof buf, "%.9g ", static_cast<double>(x));
    line += buf;
  }
  return line;
}
std::vector<float> parse_floats(const std::string& rec) {
  std::vector<float> v;
  std::stringstream fs(rec);
  for (float x; fs >> x;) v.push_back(x);
  return v;
}
}  // namespace

int main(int argc, char** argv) {
  ros::init(argc, argv, "rill_roundtrip_driver", ros::init_options::AnonymousName);
  const std::string mode = argc >= 7 ? argv[6] : "";
  if (!(argc == 6 || (argc == 7 && (mode == "vector" || mode == "stamped")) || (argc == 8 && mode == "burst"))) {
    std::fprintf(stderr,
                 "usage: %s INPUT_TOPIC OUTPUT_TOPIC RESET_SERVICE INPUTS_FILE REPLIES_FILE [vector|stamped|burst N]\n",
                 argv[0]);
    return 2;
  }
  const bool vec = mode == "vector", stamped = mode == "stamped" || mode == "burst";
  std::ifstream in(argv[4], std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> inputs;
  std::stringstream ss(all);
  for (std::string rec; std::getline(ss, rec, '\0');) inputs.push_back(rec);

  ros::NodeHandle nh;
  std::vector<std::string> replies;
  std::string diagnostics;
  ros::Subscriber sub;
  ros::Publisher pub;
  if (stamped) {
    sub = nh.subscribe<rill_msgs::VectorStamped>(argv[2], 10000, [&](const rill_msgs::VectorStamped::ConstPtr& m) {
      replies.push_back(std::to_string(m->header.seq) + " " + std::to_string(m->header.stamp.toNSec()) + " | " +
                        floats_line(m->data));
    });
    pub = nh.advertise<rill_msgs::VectorStamped>(argv[1], 10000);
  } else if (vec) {
    sub = nh.subscribe<std_msgs::Float32MultiArray>(argv[2], 100, [&](const std_msgs::Float32MultiArray::ConstPtr& m) {
      replies.push_back(floats_line(m->data));
    });
    pub = nh.advertise<std_msgs::Float32MultiArray>(argv[1], 100);
  } else {
    sub = nh.subscribe<std_msgs::String>(argv[2], 100, [&](const std_msgs::String::ConstPtr& m) {
      replies.push_back(m->data);
    });
    pub = nh.advertise<std_msgs::String>(argv[1], 100);
  }
  // The node's own diagnostics: its name is the reset service's namespace ("/rill_burst/reset").
  const std::string node_name = std::string(argv[3]).substr(0, std::string(argv[3]).rfind('/'));
  ros::Subscriber diag = nh.subscribe<diagnostic_msgs::DiagnosticArray>(
      "/diagnostics", 100, [&](const diagnostic_msgs::DiagnosticArray::ConstPtr& a) {
        for (const auto& st : a->status) {
          if (st.hardware_id != "rill" || st.name.rfind(node_name + ":", 0) != 0) continue;
          std::string line;
          for (const auto& kv : st.values) line += " " + kv.key + "=" + kv.value;
          diagnostics = line;
        }
      });
  ros::ServiceClient reset = nh.serviceClient<std_srvs::Empty>(argv[3]);
  const ros::WallTime t0 = ros::WallTime::now();
  while (ros::ok() && (pub.getNumSubscribers() == 0 || sub.getNumPublishers() == 0)) {
    if ((ros::WallTime::now() - t0).toSec() > 30) {
      std::fprintf(stderr, "driver: the node did not connect within 30 s\n");
      return 1;
    }
    ros::spinOnce();
    ros::WallDuration(0.05).sleep();
  }
  if (!reset.waitForExistence(ros::Duration(30))) {
    std::fprintf(stderr, "driver: no service %s\n", argv[3]);
    return 1;
  }
  uint32_t seq = 0;
  auto stamped_msg = [&](const std::vector<float>& v) {
    rill_msgs::VectorStamped m;
    m.header.seq = ++seq;
    m.header.stamp = ros::Time(1000.0 + seq * 1e-3);
    m.header.frame_id = "sensor";
    m.data = v;
    return m;
  };
  if (mode == "burst") {
    const long n = std::atol(argv[7]);
    const std::vector<float> v = parse_floats(inputs.at(0));
    pub.publish(stamped_msg(v));  // one first, answered: the node has seen the sequence start
    const ros::WallTime w0 = ros::WallTime::now();
    while (ros::ok() && replies.empty() && (ros::WallTime::now() - w0).toSec() < 30) {
      ros::spinOnce();
      ros::WallDuration(0.002).sleep();
    }
    replies.clear();
    for (long i = 0; i < n; ++i) pub.publish(stamped_msg(v));
    ros::WallDuration(1.0).sleep();
    pub.publish(stamped_msg(v));  // arrives: the gap before it is seen
    const ros::WallTime s0 = ros::WallTime::now();
    size_t last = 0;
    ros::WallTime quiet = ros::WallTime::now();
    // Until the replies stop and a diagnostic after them has come (the node sends one a second).
    while (ros::ok() && (ros::WallTime::now() - s0).toSec() < 30) {
      ros::spinOnce();
      if (replies.size() != last) last = replies.size(), quiet = ros::WallTime::now(), diagnostics.clear();
      if ((ros::WallTime::now() - quiet).toSec() > 1.5 && !diagnostics.empty()) break;
      ros::WallDuration(0.01).sleep();
    }
    std::ofstream out(argv[5], std::ios::binary);
    out << "published=" << (n + 2) << " replies=" << (replies.size() + 1) << diagnostics << "\n";
    return out.good() && !diagnostics.empty() ? 0 : 1;
  }
  size_t expected = 0;
  for (const std::string& rec : inputs) {
    if (rec == "\x01reset") {
      std_srvs::Empty e;
      if (!reset.call(e)) {
        std::fprintf(stderr, "driver: reset failed\n");
        return 1;
      }
      continue;
    }
    if (stamped) {
      const bool bad = !rec.empty() && rec[0] == '\x03';
      pub.publish(stamped_msg(parse_floats(bad ? rec.substr(1) : rec)));
      if (bad) continue;  // refused: no reply
    } else if (vec) {
      std_msgs::Float32MultiArray m;
      m.data = parse_floats(rec);
      pub.publish(m);
    } else {
      std_msgs::String m;
      m.data = rec;
      pub.publish(m);
    }
    ++expected;
    const ros::WallTime s0 = ros::WallTime::now();
    while (ros::ok() && replies.size() < expected) {
      if ((ros::WallTime::now() - s0).toSec() > 30) {
        std::fprintf(stderr, "driver: no reply to input %zu within 30 s\n", expected);
        return 1;
      }
      ros::spinOnce();
      ros::WallDuration(0.002).sleep();
    }
  }
  if (stamped) {  // a refused message must not have been answered late either
    ros::WallDuration(0.3).sleep();
    ros::spinOnce();
  }
  std::ofstream out(argv[5], std::ios::binary);
  for (const std::string& r : replies) out.write(r.data(), static_cast<std::streamsize>(r.size() + 1));  // with '\0'
  return out.good() ? 0 : 1;
}
