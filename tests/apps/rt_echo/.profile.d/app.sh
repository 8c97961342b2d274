export FROM_PROFILE="profile-ran"
